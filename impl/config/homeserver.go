package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/url"
	"os"
	"strings"
)

// Client is a confidential client declared in the configuration (the
// shape of MAS's static clients): the homeserver calling introspection.
type Client struct {
	ClientID string `yaml:"client_id"`
	// ClientAuthMethod is client_secret_basic (the default) or
	// client_secret_post.
	ClientAuthMethod string `yaml:"client_auth_method"`
	ClientSecret     string `yaml:"client_secret"`
	// ClientSecretFile holds the secret instead.
	ClientSecretFile string `yaml:"client_secret_file"`
}

// Client authentication methods of configured clients.
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
)

// Matrix is the homeserver registrar is the authentication service of
// (modelled on MAS's matrix section).
type Matrix struct {
	// Homeserver is its server name (server_name when empty).
	Homeserver string `yaml:"homeserver"`
	// Endpoint is its base URL, where registrar calls it; empty: no
	// homeserver integration.
	Endpoint string `yaml:"endpoint"`
	// Secret is shared with it: with kind synapse, the secret of Synapse's
	// matrix_authentication_service section (both ways); with
	// synapse_admin, Synapse's msc3861.admin_token.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// Kind is the protocol: synapse (the /_synapse/mas API of Synapse
	// 1.135+) or synapse_admin (the admin API, older Synapse with
	// experimental_features.msc3861).
	Kind string `yaml:"kind"`
}

// Enabled reports whether registrar provisions a homeserver.
func (m Matrix) Enabled() bool { return m.Endpoint != "" }

// Homeserver kinds.
const (
	KindSynapse      = "synapse"
	KindSynapseAdmin = "synapse_admin"
)

func (c *Config) validateHomeserver(p *problems) {
	m := &c.Matrix
	seen := map[string]bool{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.ClientAuthMethod == "" {
			cl.ClientAuthMethod = ClientSecretBasic
		}
		switch {
		case cl.ClientID == "" || strings.ContainsAny(cl.ClientID, ": \t"):
			p.add("clients[%d].client_id %q must be set, without spaces or colons", i, cl.ClientID)
		case seen[cl.ClientID]:
			p.add("clients[%d].client_id %q is declared twice", i, cl.ClientID)
		}
		seen[cl.ClientID] = true
		if cl.ClientAuthMethod != ClientSecretBasic && cl.ClientAuthMethod != ClientSecretPost {
			p.add("clients[%d].client_auth_method must be client_secret_basic or client_secret_post", i)
		}
		if cl.ClientSecret == "" && cl.ClientSecretFile == "" {
			p.add("clients[%d]: client_secret or client_secret_file is required", i)
		}
	}
	if !m.Enabled() {
		return
	}
	if m.Homeserver == "" {
		m.Homeserver = c.ServerName
	}
	if m.Homeserver != c.ServerName {
		p.add("matrix.homeserver %q must be server_name %q", m.Homeserver, c.ServerName)
	}
	if u, err := url.Parse(m.Endpoint); err != nil || !httpURL(m.Endpoint) || u.RawQuery != "" || u.Fragment != "" {
		p.add("matrix.endpoint %q must be an absolute http(s) URL without query or fragment", m.Endpoint)
	}
	switch m.Kind {
	case "":
		m.Kind = KindSynapse
	case KindSynapse, KindSynapseAdmin:
	default:
		p.add("matrix.kind %q must be synapse or synapse_admin", m.Kind)
	}
	if m.Secret == "" && m.SecretFile == "" {
		p.add("matrix.secret or matrix.secret_file is required with matrix.endpoint")
	}
}

// resolveHomeserver reads the secrets kept in files.
func (c *Config) resolveHomeserver() error {
	for i := range c.Clients {
		if cl := &c.Clients[i]; cl.ClientSecret == "" && cl.ClientSecretFile != "" {
			secret, err := readSecretFile(cl.ClientSecretFile)
			if err != nil {
				return &Error{Problems: []string{"clients[" + cl.ClientID + "].client_secret_file: " + err.Error()}}
			}
			cl.ClientSecret = secret
		}
	}
	if m := &c.Matrix; m.Secret == "" && m.SecretFile != "" {
		secret, err := readSecretFile(m.SecretFile)
		if err != nil {
			return &Error{Problems: []string{"matrix.secret_file: " + err.Error()}}
		}
		m.Secret = secret
	}
	return nil
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", os.ErrNotExist
	}
	return secret, nil
}

// StaticClient returns the configured client clientID, if any.
func (c *Config) StaticClient(clientID string) (Client, bool) {
	for _, cl := range c.Clients {
		if cl.ClientID == clientID {
			return cl, true
		}
	}
	return Client{}, false
}

// SecretsEqual compares two secrets in constant time (their digests, so
// that not even the length leaks).
func SecretsEqual(a, b string) bool {
	da, db := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(da[:], db[:]) == 1 && a != ""
}
