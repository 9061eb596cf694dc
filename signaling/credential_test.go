package signaling

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

const testSecret = "s3cr3t"

func authServer(t *testing.T) *embedded {
	t.Helper()
	ks, err := NewKeyStore(Key{Key: "abc", Secret: testSecret}, Key{Key: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, ServerOptions{Keys: ks, CheckInterval: 20 * time.Millisecond})
}

func authClient(s *embedded, id string, cred *Credential, h Handler) ClientOptions {
	o := fastClient(s.wsURL(), id, h)
	o.Key, o.Credential = "abc", cred
	return o
}

// credentialFor signs a credential for id that has remaining left, starting
// in the past so short remainders keep a valid ttl.
func credentialFor(secret, id string, remaining time.Duration) *Credential {
	ttl := max(MinCredentialTTL, remaining+time.Minute)
	c := NewCredential(secret, id, time.Now().Add(remaining-ttl), ttl)
	return &c
}

func TestNewCredential(t *testing.T) {
	c := NewCredential("secret", "peer1", time.Unix(1700000000, 0), time.Hour)
	if c.Timestamp != 1700000000 || c.TTL != 3600 {
		t.Fatalf("%+v", c)
	}
	mac, err := base64.StdEncoding.DecodeString(c.AuthToken)
	if err != nil || len(mac) != 32 {
		t.Fatalf("authToken %q: %v", c.AuthToken, err)
	}
	now := time.Unix(1700000100, 0)
	if _, err := verifyCredential("secret", "peer1", c, now, 0); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		secret, id string
		c          Credential
		now        time.Time
	}{
		"other secret":  {"nope", "peer1", c, now},
		"other id":      {"secret", "peer2", c, now},
		"other ttl":     {"secret", "peer1", Credential{c.Timestamp, 3601, c.AuthToken}, now},
		"ttl too short": {"secret", "peer1", NewCredential("secret", "peer1", now, 599*time.Second), now},
		"ttl too long":  {"secret", "peer1", NewCredential("secret", "peer1", now, 90001*time.Second), now},
		"future":        {"secret", "peer1", NewCredential("secret", "peer1", now.Add(time.Minute), time.Hour), now},
		"expired":       {"secret", "peer1", c, now.Add(2 * time.Hour)},
	} {
		if _, err := verifyCredential(tc.secret, tc.id, tc.c, tc.now, 5*time.Second); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCredentialConnect(t *testing.T) {
	s := authServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()

	c := connect(t, authClient(s, "alice", credentialFor(testSecret, "alice", time.Hour), nil))
	c.Close()
	// A key without secret needs none.
	o := fastClient(s.wsURL(), "bob", nil)
	o.Key = "plain"
	connect(t, o).Close()

	now := time.Now()
	future := NewCredential(testSecret, "alice", now.Add(time.Hour), time.Hour)
	for name, tc := range map[string]struct {
		cred *Credential
		msg  string
	}{
		"missing":   {nil, "credential required"},
		"wrong":     {credentialFor("wrong", "alice", time.Hour), "authToken does not match"},
		"other id":  {credentialFor(testSecret, "bob", time.Hour), "authToken does not match"},
		"future":    {&future, "timestamp is in the future"},
		"expired":   {credentialFor(testSecret, "alice", -time.Minute), "credential expired"},
		"short ttl": {ptr(NewCredential(testSecret, "alice", now, 100*time.Second)), "ttl"},
	} {
		_, err := Connect(ctx, authClient(s, "alice", tc.cred, nil))
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want ErrAuth mentioning %q", name, err, tc.msg)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestCredentialExpiry: EXPIRESIN comes at once when less than the lead
// remains; a rejected renewal keeps the connection; at expiry the server
// ends it and the client fails for good.
func TestCredentialExpiry(t *testing.T) {
	s := authServer(t)
	ra, rb := newRecorder(), newRecorder()
	a := connect(t, authClient(s, "alice", credentialFor(testSecret, "alice", 4*time.Second), ra))
	b := connect(t, authClient(s, "bob", credentialFor(testSecret, "bob", time.Hour), rb))
	if sec := ra.expiresIn(t); sec < 1 || sec > 4 {
		t.Fatalf("EXPIRESIN %d, want 1..4", sec)
	}

	if err := a.UpdateCredential(*credentialFor("wrong", "alice", time.Hour)); err != nil {
		t.Fatal(err)
	}
	m := ra.message(t)
	if m.Type != TypeError || !strings.Contains(string(m.Payload), "credential renewal rejected") {
		t.Fatalf("got %+v, want the renewal's rejection", m)
	}
	// Still connected.
	mustSend(t, b, Message{Type: TypeOffer, Dst: "alice", Payload: payload(`1`)})
	if m := ra.message(t); m.Type != TypeOffer || m.Src != "bob" {
		t.Fatalf("got %+v", m)
	}
	// Locally invalid renewals do not even go out.
	if err := a.UpdateCredential(NewCredential(testSecret, "alice", time.Now(), time.Second)); !errors.Is(err, ErrAuth) {
		t.Fatalf("renewal with ttl 1 s: %v", err)
	}

	st := ra.state(t)
	if st.s != Failed || !errors.Is(st.err, ErrAuth) || !strings.Contains(st.err.Error(), "credential expired") {
		t.Fatalf("state %v %v, want Failed: credential expired", st.s, st.err)
	}
	if a.Connected() {
		t.Fatal("still connected")
	}
}

// TestCredentialRenewal: a renewal is accepted (its own EXPIRESIN comes, as
// less than the lead remains of it too) and carries the session past the old
// expiry, and reconnections use it.
func TestCredentialRenewal(t *testing.T) {
	s := authServer(t)
	ra, rb := newRecorder(), newRecorder()
	first := credentialFor(testSecret, "alice", 3*time.Second)
	px := startProxy(t, s.addr)
	o := authClient(s, "alice", first, ra)
	o.URL = "ws://" + px.addr() + "/peerjs"
	a := connect(t, o)
	b := connect(t, authClient(s, "bob", credentialFor(testSecret, "bob", time.Hour), rb))
	ra.expiresIn(t)

	if err := a.UpdateCredential(*credentialFor(testSecret, "alice", 45*time.Second)); err != nil {
		t.Fatal(err)
	}
	if sec := ra.expiresIn(t); sec < 40 || sec > 45 {
		t.Fatalf("EXPIRESIN %d after renewal, want about 45", sec)
	}
	// Wait out the first credential (the sweep runs every 20 ms).
	time.Sleep(time.Until(first.Expiry().Add(500 * time.Millisecond)))
	mustSend(t, b, Message{Type: TypeOffer, Dst: "alice", Payload: payload(`2`)})
	if m := ra.message(t); m.Type != TypeOffer || m.Src != "bob" {
		t.Fatalf("got %+v", m)
	}
	select {
	case st := <-ra.states:
		t.Fatalf("state %v %v", st.s, st.err)
	default:
	}
	// A reconnection now can only succeed with the renewed credential.
	px.cutClients()
	if st := ra.state(t); st.s != Disconnected {
		t.Fatalf("state %v %v", st.s, st.err)
	}
	if st := ra.state(t); st.s != Reconnected {
		t.Fatalf("state %v %v, want Reconnected", st.s, st.err)
	}
	mustSend(t, b, Message{Type: TypeOffer, Dst: "alice", Payload: payload(`3`)})
	if m := ra.message(t); m.Type != TypeOffer || string(m.Payload) != "3" {
		t.Fatalf("got %+v", m)
	}
}
