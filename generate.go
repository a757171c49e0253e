// Package registrar is a Matrix homeserver's account registration and
// management service: the client-server API's registration, login and
// account endpoints, generated from the spec under spec/.
//
// `go generate ./...` bundles spec/ into spec/openapi.gen.yaml (and what
// request validation reads of it into api/validation.gen.go) and runs
// oapi-codegen on it to produce package api.
package registrar

//go:generate go run ./spec/convert -dir spec
//go:generate go tool oapi-codegen -config oapi-codegen.yaml spec/openapi.gen.yaml
