package homeserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Profile is a user's profile as the homeserver has it.
type Profile struct {
	DisplayName string `json:"displayname"`
	AvatarURL   string `json:"avatar_url"`
}

// profileTimeout bounds the page's wait for the homeserver.
const profileTimeout = 3 * time.Second

// Profile reads userID's profile from the homeserver (the client-server
// API's profile endpoint, with registrar's admin token).
func (s *Service) Profile(ctx context.Context, userID string) (Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, profileTimeout)
	defer cancel()
	var p Profile
	_, err := s.caller().call(ctx, http.MethodGet, "/_matrix/client/v3/profile/"+url.PathEscape(userID), nil, &p)
	if notFound(err) {
		return Profile{}, nil
	}
	return p, err
}

// ErrNoMedia is an avatar the homeserver does not have (or an mxc URI that
// is not one).
var ErrNoMedia = errors.New("homeserver: no such media")

// MaxThumbnailBytes bounds a thumbnail read from the homeserver.
const MaxThumbnailBytes = 1 << 20

// Thumbnail is a small square thumbnail of the media at mxc, and its
// media type: the authenticated media API (Matrix v1.11), or the older
// one on a homeserver without it.
func (s *Service) Thumbnail(ctx context.Context, mxc string, size int) ([]byte, string, error) {
	rest, ok := strings.CutPrefix(mxc, "mxc://")
	server, mediaID, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || server == "" || mediaID == "" || strings.Contains(mediaID, "/") {
		return nil, "", ErrNoMedia
	}
	ctx, cancel := context.WithTimeout(ctx, profileTimeout)
	defer cancel()
	query := fmt.Sprintf("?width=%d&height=%d&method=crop", size, size)
	tail := url.PathEscape(server) + "/" + url.PathEscape(mediaID) + query
	for _, prefix := range []string{"/_matrix/client/v1/media/thumbnail/", "/_matrix/media/v3/thumbnail/"} {
		body, typ, status, err := s.caller().raw(ctx, prefix+tail)
		switch {
		case err != nil:
			return nil, "", err
		case status == http.StatusOK:
			return body, typ, nil
		case status == http.StatusNotFound && prefix == "/_matrix/client/v1/media/thumbnail/":
			continue // an older homeserver, or no such media: ask the older API
		case status == http.StatusNotFound:
			return nil, "", ErrNoMedia
		default:
			return nil, "", &statusError{status: status}
		}
	}
	return nil, "", ErrNoMedia
}

func (s *Service) caller() caller {
	switch a := s.api.(type) {
	case masAPI:
		return a.caller
	case adminAPI:
		return a.caller
	}
	return caller{}
}

// raw GETs path with the admin token: the body (bounded), its media type
// and the status.
func (c caller) raw(ctx context.Context, path string) ([]byte, string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxThumbnailBytes+1))
	if err != nil {
		return nil, "", resp.StatusCode, err
	}
	if len(body) > MaxThumbnailBytes {
		return nil, "", resp.StatusCode, errors.New("homeserver: thumbnail too large")
	}
	return body, resp.Header.Get("Content-Type"), resp.StatusCode, nil
}
