package web

import (
	"strings"
	"sync"

	"github.com/medama-io/go-useragent"
)

var agentParser = sync.OnceValue(useragent.NewParser)

// Agent is what a User-Agent header says of the software and platform
// behind a session.
type Agent struct {
	// App is a Matrix app's name ("Element X", "mautrix-go"), or a web
	// browser's ("Firefox").
	App string
	// Platform is the operating system ("iOS", "Linux"), or "".
	Platform string
	// Browser: App is a web browser.
	Browser bool
}

// ParseAgent reads a User-Agent header: a browser's (Mozilla/5.0 ...), or
// an app's product token ("Element X/1.2 (iPhone; iOS 17.4)").
func ParseAgent(header string) Agent {
	header = strings.TrimSpace(header)
	if header == "" {
		return Agent{}
	}
	ua := agentParser().Parse(header)
	a := Agent{Platform: string(ua.OS())}
	if a.Platform == "MacOS" {
		a.Platform = "macOS" // as Apple spells it
	}
	if a.Platform == "" {
		a.Platform = platformOf(header)
	}
	product, _, _ := strings.Cut(header, "/")
	if product == "" || strings.EqualFold(product, "Mozilla") || strings.Contains(product, "(") {
		if b := string(ua.Browser()); b != "" {
			a.App, a.Browser = b, true
		}
		return a
	}
	a.App = strings.TrimSpace(product)
	if len(a.App) > 64 {
		a.App = a.App[:64]
	}
	return a
}

// Name is the agent as a session's name in lang: "Firefox on Linux",
// "Element X on iOS", "Element X"; "" when nothing is known.
func (a Agent) Name(lang string) string {
	switch {
	case a.App != "" && a.Platform != "":
		return T(lang, "agent_on", "App", a.App, "Platform", a.Platform)
	case a.App != "":
		return a.App
	}
	return a.Platform
}

// platforms are the operating systems apps name in their user agent's
// comment ("(iPhone; iOS 17.4)", "(Linux; Android 14)"), most specific
// first.
var platforms = []struct{ token, name string }{
	{"Android", "Android"}, {"iOS", "iOS"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Windows", "Windows"},
	{"Mac OS", "macOS"}, {"macOS", "macOS"}, {"Darwin", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"}, {"FreeBSD", "FreeBSD"},
}

// platformOf finds the operating system in a user agent's comments.
func platformOf(header string) string {
	_, comment, ok := strings.Cut(header, "(")
	if !ok {
		return ""
	}
	for _, p := range platforms {
		if strings.Contains(comment, p.token) {
			return p.name
		}
	}
	return ""
}
