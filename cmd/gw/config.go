package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Every flag is also read from the environment (GW_<NAME>, dashes as
// underscores) and from the TOML config file (<name> with dashes or
// underscores). The command line wins over the environment, which wins
// over the file.

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// envName is the environment variable of a flag.
func envName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnvAndFile fills flags not given on the command line from the
// environment, then from the config file (if any).
func applyEnvAndFile(fs *flag.FlagSet, envPrefix string, file map[string]any) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(envName(envPrefix, f.Name)); ok {
			if err := setFromString(f, v, true); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(envPrefix, f.Name), err))
			}
			return
		}
		v, ok := file[f.Name]
		if !ok {
			v, ok = file[strings.ReplaceAll(f.Name, "-", "_")]
		}
		if !ok {
			return
		}
		if err := setFromTOML(f, v); err != nil {
			errs = append(errs, fmt.Errorf("config key %s: %w", f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// setFromString sets a flag from an environment value; repeatable flags take
// whitespace-separated values.
func setFromString(f *flag.Flag, v string, split bool) error {
	if _, ok := f.Value.(*listFlag); ok && split {
		for _, item := range strings.Fields(v) {
			if err := f.Value.Set(item); err != nil {
				return err
			}
		}
		return nil
	}
	return f.Value.Set(v)
}

func setFromTOML(f *flag.Flag, v any) error {
	switch x := v.(type) {
	case string:
		return f.Value.Set(x)
	case bool:
		return f.Value.Set(strconv.FormatBool(x))
	case int64:
		return f.Value.Set(strconv.FormatInt(x, 10))
	case float64:
		return f.Value.Set(strconv.FormatFloat(x, 'f', -1, 64))
	case []any:
		if _, ok := f.Value.(*listFlag); !ok {
			return errors.New("takes a single value, not a list")
		}
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return fmt.Errorf("list items must be strings, got %T", item)
			}
			if err := f.Value.Set(s); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("unsupported value type %T", v)
	}
}

// loadConfigFile reads a TOML config. Besides gw's own keys it accepts the
// original gateway's config.toml: [general] api_port and log_level.
func loadConfigFile(path string) (map[string]any, error) {
	out := map[string]any{}
	if path == "" {
		return out, nil
	}
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	for k, v := range raw {
		if k == "general" {
			continue
		}
		out[k] = v
	}
	if g, ok := raw["general"].(map[string]any); ok {
		if p, ok := g["api_port"]; ok {
			port, ok := p.(int64)
			if !ok || port < 1 || port > 65535 {
				return nil, fmt.Errorf("config %s: [general] api_port must be a port number", path)
			}
			if _, dup := out["api_addr"]; !dup {
				if _, dup := out["api-addr"]; !dup {
					out["api_addr"] = net.JoinHostPort("127.0.0.1", strconv.FormatInt(port, 10))
				}
			}
		}
		if l, ok := g["log_level"]; ok {
			if _, dup := out["log_level"]; !dup {
				out["log_level"] = l
			}
		}
	}
	return out, nil
}

// findConfigPath takes --config (or GW_CONFIG) before the other flags are
// parsed, since the file supplies their values.
func findConfigPath(args []string) string {
	for i, a := range args {
		for _, p := range []string{"--config", "-config"} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(a, p+"=") {
				return strings.TrimPrefix(a, p+"=")
			}
		}
	}
	return os.Getenv("GW_CONFIG")
}

// parsePortRange reads "50001-51000".
func parsePortRange(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("port range %q: want FIRST-LAST", s)
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return 0, 0, fmt.Errorf("port range %q: want FIRST-LAST within 1-65535", s)
	}
	return a, b, nil
}

// parseCPUs reads "0,2-3".
func parseCPUs(s string) ([]int, error) {
	var cpus []int
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad cpu %q", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// parseIP reads the media address.
func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("media address %q: %w", s, err)
	}
	return a, nil
}

// isLoopbackAddr reports whether a listen address only accepts local
// connections.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
