package impl

import (
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"registrar/api"
)

// loadSpec parses the validation spec (what request validation reads of
// the embedded spec, reduced by go generate) once per process: request
// handling only reads it, so every server of the process shares it. Its
// parts are parsed at once, then their paths joined into one document.
var loadSpec = sync.OnceValues(func() (*openapi3.T, error) {
	docs := make([]*openapi3.T, len(api.ValidationSpec))
	errs := make([]error, len(api.ValidationSpec))
	var wg sync.WaitGroup
	for i, part := range api.ValidationSpec {
		wg.Go(func() { docs[i], errs[i] = openapi3.NewLoader().LoadFromData([]byte(part)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("validation spec part %d: %w", i, err)
		}
	}
	spec := docs[0]
	for _, doc := range docs[1:] {
		for path, item := range doc.Paths.Map() {
			spec.Paths.Set(path, item)
		}
	}
	return spec, nil
})

// PreloadSpec starts parsing the validation spec in the background (the
// largest part of starting), so that it overlaps reading the
// configuration and opening the database; NewServer waits for it.
func PreloadSpec() { go func() { _, _ = loadSpec() }() }
