package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v4"

	"github.com/gw-project/gw/internal/gwtest"
)

var metricName = regexp.MustCompile(`\b(?:gw|go|process)_[a-z0-9_]+`)

// TestDashboard: the Grafana dashboard parses, is provisioning-ready (its
// datasource is a variable, not an import-time __inputs placeholder, which
// file provisioning leaves unresolved), and every metric its queries name
// is one gw exposes.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(gwtest.RepoRoot(), "deploy", "grafana", "gw-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Inputs     any    `json:"__inputs"`
		Templating struct {
			List []struct {
				Name, Type, Definition string
				Query                  any
			}
		}
		Panels []map[string]any
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.Inputs != nil {
		t.Errorf("uid %q title %q __inputs %v", d.UID, d.Title, d.Inputs)
	}
	vars := map[string]string{}
	var exprs []string
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		exprs = append(exprs, v.Definition)
	}
	for name, typ := range map[string]string{"DS_PROMETHEUS": "datasource", "instance": "query", "peer": "query"} {
		if vars[name] != typ {
			t.Errorf("templating variable %s is %q, want %q", name, vars[name], typ)
		}
	}

	ids := map[float64]bool{}
	for _, p := range d.Panels {
		title, _ := p["title"].(string)
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v twice", id)
		}
		ids[id] = true
		if p["type"] == "row" {
			continue
		}
		checkDatasource(t, title, p["datasource"])
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		for _, tg := range targets {
			tm := tg.(map[string]any)
			checkDatasource(t, title, tm["datasource"])
			expr, _ := tm["expr"].(string)
			if expr == "" {
				t.Errorf("panel %q: a target without expr", title)
			}
			exprs = append(exprs, expr)
		}
	}

	fams := gather(t, fullRegistry(t))
	exposed := func(name string) bool {
		if fams[name] != nil {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			if ok && fams[base].GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
		return false
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			if !exposed(name) {
				t.Errorf("the dashboard queries %s, which gw does not expose: %s", name, e)
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
		}
	}
	// What the dashboard must show.
	for _, name := range []string{
		"gw_stream_jitter_seconds", "gw_stream_remote_jitter_seconds", "gw_stream_loss_ratio", "gw_stream_remote_loss_ratio",
		"gw_stream_bytes_total", "gw_stream_rtt_seconds",
		"gw_media_jitter_seconds", "gw_media_loss_ratio", "gw_media_rtt_seconds",
		"gw_dataplane_packets_total", "gw_dataplane_drops_total", "gw_dataplane_batch_size",
		"gw_http_requests_total", "gw_http_request_duration_seconds", "gw_signaling_messages_total",
	} {
		if !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

func checkDatasource(t *testing.T, panel string, ds any) {
	t.Helper()
	m, _ := ds.(map[string]any)
	if m["type"] != "prometheus" || m["uid"] != "${DS_PROMETHEUS}" {
		t.Errorf("panel %q: datasource %v, want the DS_PROMETHEUS variable", panel, ds)
	}
}

// TestPrometheusConfig: the scrape config parses and scrapes gw's default
// API address.
func TestPrometheusConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(gwtest.RepoRoot(), "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("%+v", cfg)
	}
	sc := cfg.ScrapeConfigs[0]
	if sc.JobName != "gw" || sc.MetricsPath != "/metrics" || len(sc.StaticConfigs) != 1 ||
		!slices.Contains(sc.StaticConfigs[0].Targets, "127.0.0.1:8000") {
		t.Errorf("%+v", sc)
	}
}

// TestREADMEListsFamilies keeps the README's Observability section in step
// with the code.
func TestREADMEListsFamilies(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(gwtest.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range wantFamilies {
		if !strings.Contains(string(raw), "`"+name+"`") {
			t.Errorf("README does not list %s", name)
		}
	}
}
