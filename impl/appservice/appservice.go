// Package appservice reads application service registration files
// (application service API, "Registration") and answers which service a
// token or a user ID belongs to. It knows nothing of the server.
package appservice

import (
	"crypto/sha256"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Service is one application service registration.
type Service struct {
	ID              string `yaml:"id"`
	URL             any    `yaml:"url"`
	ASToken         string `yaml:"as_token"`
	HSToken         string `yaml:"hs_token"`
	SenderLocalpart string `yaml:"sender_localpart"`
	Namespaces      struct {
		Users []struct {
			Regex     string `yaml:"regex"`
			Exclusive bool   `yaml:"exclusive"`
		} `yaml:"users"`
	} `yaml:"namespaces"`

	users []namespace
}

type namespace struct {
	re        *regexp.Regexp
	exclusive bool
}

// Interested reports whether userID is in one of the service's user
// namespaces or is its sender (senderID).
func (a *Service) Interested(userID, senderID string) bool {
	if userID == senderID {
		return true
	}
	for _, ns := range a.users {
		if ns.re.MatchString(userID) {
			return true
		}
	}
	return false
}

// Exclusive reports whether userID is in one of the service's exclusive
// namespaces.
func (a *Service) Exclusive(userID string) bool {
	for _, ns := range a.users {
		if ns.exclusive && ns.re.MatchString(userID) {
			return true
		}
	}
	return false
}

// Load reads registration files; ids and as_tokens must be unique.
// Namespace regexes match from the start of the user ID, as Synapse's
// re.match does. Errors name the file.
func Load(files []string) ([]*Service, error) {
	var out []*Service
	ids, tokens := map[string]string{}, map[string]string{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var as Service
		if err := yaml.Unmarshal(data, &as); err != nil {
			return nil, fmt.Errorf("%s: %s", file, strings.Join(strings.Fields(err.Error()), " "))
		}
		switch {
		case as.ID == "" || as.ASToken == "" || as.HSToken == "" || as.SenderLocalpart == "":
			return nil, fmt.Errorf("%s: id, as_token, hs_token and sender_localpart are required", file)
		case ids[as.ID] != "":
			return nil, fmt.Errorf("%s and %s share the id %q", ids[as.ID], file, as.ID)
		case tokens[as.ASToken] != "":
			return nil, fmt.Errorf("%s and %s share an as_token", tokens[as.ASToken], file)
		}
		ids[as.ID], tokens[as.ASToken] = file, file
		for i, ns := range as.Namespaces.Users {
			re, err := regexp.Compile("^(?:" + ns.Regex + ")")
			if err != nil {
				return nil, fmt.Errorf("%s: namespaces.users[%d].regex is not a valid regular expression", file, i)
			}
			as.users = append(as.users, namespace{re: re, exclusive: ns.Exclusive})
		}
		out = append(out, &as)
	}
	return out, nil
}

// Index finds application services by token and by exclusive namespace.
type Index struct {
	all     []*Service
	byToken map[[32]byte]*Service
}

// NewIndex indexes services.
func NewIndex(services []*Service) *Index {
	idx := &Index{all: services, byToken: map[[32]byte]*Service{}}
	for _, as := range services {
		idx.byToken[sha256.Sum256([]byte(as.ASToken))] = as
	}
	return idx
}

// Any reports whether any service is registered.
func (idx *Index) Any() bool { return len(idx.all) > 0 }

// ByToken returns the service whose as_token this is, or nil. The token
// is looked up by its hash, so the lookup's timing does not depend on
// how much of a token matches.
func (idx *Index) ByToken(token string) *Service {
	if len(idx.all) == 0 {
		return nil
	}
	return idx.byToken[sha256.Sum256([]byte(token))]
}

// ExclusiveOwner returns the service whose exclusive namespace holds
// userID, or nil.
func (idx *Index) ExclusiveOwner(userID string) *Service {
	for _, as := range idx.all {
		if as.Exclusive(userID) {
			return as
		}
	}
	return nil
}
