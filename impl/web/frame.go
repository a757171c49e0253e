package web

import (
	"html/template"
	"strings"
)

// layout is the frame of every page: a header with the service's name and
// logo and the homeserver, the page's heading and its error or notice, and
// a footer with the operator's policy, terms and imprint and the language
// switcher. Page templates call "head" and "foot" with their view.
const layout = `{{define "head"}}<!DOCTYPE html>
<html lang="{{.Lang}}" data-show="{{t "password_show"}}" data-hide="{{t "password_hide"}}" data-done="{{t "fallback_done_text"}}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="color-scheme" content="light dark">
<title>{{.Title}} · {{.Site.Name}}</title>
<link rel="stylesheet" href="{{.Site.StyleURL}}"><script src="{{.Site.ScriptURL}}" defer></script>
{{range .ScriptURLs}}<script src="{{.}}" async defer></script>{{end}}{{if .InlineScript}}<script>{{.InlineScript}}</script>{{end}}
</head><body><div class="site">
<a class="skip" href="#main">{{t "layout_skip"}}</a>
<header class="site-header"><span class="brand">{{if .Site.LogoURL}}<img src="{{.Site.LogoURL}}" alt="" width="32" height="32">{{end}}<span id="service-name">{{.Site.Name}}</span></span>
<span class="server" id="server-name"><span class="visually-hidden">{{t "layout_homeserver"}} </span>{{.Site.ServerName}}</span></header>
<main id="main"{{if .Wide}} class="wide"{{end}}><div class="card"{{if .ErrorCode}} data-errcode="{{.ErrorCode}}"{{end}}>
<h1 id="title">{{.Title}}</h1>
{{if .Error}}<div class="alert error" role="alert" id="error">{{.Error}}</div>{{end}}
{{- if .Notice}}<div class="alert notice" role="status" id="notice">{{.Notice}}</div>{{end}}{{end}}

{{define "foot"}}</div></main>
<footer class="site-footer">{{if or .Site.PolicyURI .Site.TOSURI}}<nav aria-label="{{t "layout_legal"}}">
{{- if .Site.PolicyURI}}<a href="{{.Site.PolicyURI}}" id="site-policy">{{t "layout_policy"}}</a>{{end}}
{{- if .Site.TOSURI}}<a href="{{.Site.TOSURI}}" id="site-tos">{{t "layout_terms"}}</a>{{end}}</nav>{{end}}
{{- if .Site.Imprint}}<p id="imprint">{{.Site.Imprint}}</p>{{end}}
{{- if .Languages}}<nav class="languages" aria-label="{{t "layout_language"}}">{{range .Languages}}<a href="{{.URL}}" hreflang="{{.Code}}" lang="{{.Code}}"{{if .Current}} aria-current="true"{{end}}>{{.Name}}</a>{{end}}</nav>{{end}}
</footer></div></body></html>{{end}}

{{define "message"}}{{template "head" .}}<p id="message">{{.Message}}</p>
{{- if .BackURL}}<p class="actions"><a class="button secondary" href="{{.BackURL}}" id="back">{{.BackLabel}}</a></p>{{end}}{{template "foot" .}}{{end}}

{{define "_input"}}<input type="{{.Type}}" id="{{.ID}}" name="{{.Name}}"{{if .Value}} value="{{.Value}}"{{end}} autocomplete="{{.Autocomplete}}"
{{- with .Capitalize}} autocapitalize="{{.}}" spellcheck="false"{{end}}{{if .Inputmode}} inputmode="{{.Inputmode}}"{{end}} required
{{- if .Invalid}} aria-invalid="true"{{end}}{{with .Describedby}} aria-describedby="{{.}}"{{end}}{{if .Focus}} autofocus{{end}}>{{end}}

{{define "_providers"}}{{if .}}<div class="providers" id="providers"><p class="divider"><span>{{t "providers_or"}}</span></p>
{{range .}}<a class="button secondary provider" href="{{.URL}}" id="provider-{{.ID}}">{{t "providers_continue_with" "Provider" .Name}}</a>{{end}}</div>{{end}}{{end}}

{{define "_error"}}{{if .Message}}<p class="field-error" id="{{.ID}}-error">{{.Message}}</p>{{end}}{{end}}
`

// Frame is what the layout shows; page views embed it. Title, Error or
// Notice (a line above the page's content), FieldErrors (messages beside
// fields), Message and BackURL (one-paragraph pages) are the page's; Lang,
// Site and Languages are filled in by Site.Render.
type Frame struct {
	Title, Error, Notice, Message string
	// ErrorCode is the Matrix errcode behind Error, if any (for scripts).
	ErrorCode string
	// ScriptURLs load third-party scripts (a captcha widget);
	// InlineScript is allowed by its hash in the page's policy.
	ScriptURLs   []string
	InlineScript template.JS
	// BackURL, BackLabel: the way back from a message page.
	BackURL, BackLabel string
	// Here is this page's GET address, for the language switcher of a
	// form's answer.
	Here string
	// Wide pages (the account) use a wider column.
	Wide bool
	// Autofocus is the field focused when none is invalid.
	Autofocus   string
	FieldErrors map[string]string
	// firstInvalid is the first field given an error: it takes the focus.
	firstInvalid string

	Lang      string
	Site      SiteInfo
	Languages []LanguageLink
}

func (f *Frame) frame() *Frame { return f }

// Framed is a page view: a struct embedding Frame, by pointer.
type Framed interface{ frame() *Frame }

// FieldError puts msg beside the field whose input has id; the first
// field given an error takes the focus.
func (f *Frame) FieldError(id, msg string) {
	if f.FieldErrors == nil {
		f.FieldErrors = map[string]string{}
	}
	if f.firstInvalid == "" {
		f.firstInvalid = id
	}
	f.FieldErrors[id] = msg
}

// Invalid reports whether the field id has an error (for aria-invalid).
func (f *Frame) Invalid(id string) bool { return f.FieldErrors[id] != "" }

// Focus reports whether field id takes the focus: the first invalid one,
// or Autofocus when none is.
func (f *Frame) Focus(id string) bool {
	if f.firstInvalid != "" {
		return id == f.firstInvalid
	}
	return id == f.Autofocus
}

// Describedby is the aria-describedby of field id: its error, if any,
// then its hints; "" for none.
func (f *Frame) Describedby(id string, hints ...string) string {
	var ids []string
	if f.Invalid(id) {
		ids = append(ids, id+"-error")
	}
	return strings.Join(append(ids, hints...), " ")
}

// FieldMessage is a field's error for the "_error" template.
type FieldMessage struct{ ID, Message string }

// ErrorOf is field id's error for the "_error" template.
func (f *Frame) ErrorOf(id string) FieldMessage {
	return FieldMessage{ID: id, Message: f.FieldErrors[id]}
}

// Input is a required form field for the "_input" template.
type Input struct {
	ID, Name, Type, Value, Autocomplete string
	Capitalize, Inputmode               string
	Invalid, Focus                      bool
	Describedby                         string
}

// Input is field id (also its name) of type typ with its autocomplete
// token, value and the ids of its hints; its error state comes from the
// frame. Passwords are never given a value back.
func (f *Frame) Input(id, typ, autocomplete, value string, hints ...string) Input {
	in := Input{ID: id, Name: id, Type: typ, Value: value, Autocomplete: autocomplete, Invalid: f.Invalid(id), Focus: f.Focus(id),
		Describedby: f.Describedby(id, hints...)}
	switch autocomplete {
	case "username", "email", "off":
		in.Capitalize = "none"
	case "one-time-code":
		in.Capitalize, in.Inputmode = "characters", "text"
	}
	if typ == "password" {
		in.Value = ""
	}
	return in
}

// SiteInfo is the service as the layout shows it.
type SiteInfo struct {
	Name, ServerName           string
	LogoURL                    string
	StyleURL, ScriptURL        string
	PolicyURI, TOSURI, Imprint string
}

// ProviderLink is an upstream identity provider's button on a page.
type ProviderLink struct {
	ID, Name, URL string
}
