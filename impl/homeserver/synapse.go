package homeserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"

	"registrar/db"
	"registrar/impl/matrix"
)

// api is one protocol of telling the homeserver.
type api interface {
	// pushUser creates, updates, deactivates or reactivates the user to
	// match u.
	pushUser(ctx context.Context, u userState) error
	// upsertDevice creates the device or updates its display name;
	// errUnknownUser when the homeserver does not know the user yet.
	upsertDevice(ctx context.Context, userID string, d db.HomeserverDevice) error
	// deleteDevice deletes the device (gone already is not an error).
	deleteDevice(ctx context.Context, userID, deviceID string) error
	// syncDevices makes the user's devices exactly devices.
	syncDevices(ctx context.Context, userID string, devices []db.HomeserverDevice) (added, removed int, err error)
	// localpartAvailable is nil, a *matrix.Error refusal, or a failure.
	localpartAvailable(ctx context.Context, localpart string) error
	allowCrossSigningReset(ctx context.Context, userID string) error
}

// errUnknownUser: the homeserver has no such user (yet).
var errUnknownUser = errors.New("homeserver: unknown user")

// caller makes authenticated JSON calls to the homeserver.
type caller struct {
	client *http.Client
	base   string
	secret string
	server string
}

// statusError is an answer the call did not expect.
type statusError struct {
	status  int
	errcode string
	message string
}

func (e *statusError) Error() string {
	if e.errcode != "" {
		return fmt.Sprintf("homeserver answered %d %s: %s", e.status, e.errcode, e.message)
	}
	return fmt.Sprintf("homeserver answered %d", e.status)
}

// call sends body (JSON, or nothing when nil) and decodes a 2xx answer
// into out (when not nil); any other answer is a *statusError.
func (c caller) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Errcode string `json:"errcode"`
			Error   string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, &statusError{status: resp.StatusCode, errcode: e.Errcode, message: e.Error}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("homeserver answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// notFound reports a 404 answer.
func notFound(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.status == http.StatusNotFound
}

// unrecognised reports a 404 M_UNRECOGNIZED (or a bare 404/405): an API
// this homeserver does not have.
func unrecognised(err error) bool {
	var se *statusError
	return errors.As(err, &se) && (se.status == http.StatusMethodNotAllowed ||
		se.status == http.StatusNotFound && (se.errcode == "" || se.errcode == matrix.CodeUnrecognized))
}

// refusal turns a 400 about a username into the refusal to pass on.
func refusal(err error) error {
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusBadRequest {
		switch se.errcode {
		case matrix.CodeUserInUse, matrix.CodeExclusive, matrix.CodeInvalidUsername:
			return matrix.BadRequest(se.errcode, se.message)
		}
	}
	return err
}

// masAPI is Synapse's /_synapse/mas/* API (Synapse 1.135+), the one
// matrix-authentication-service speaks: users by localpart, the shared
// secret as the bearer token.
type masAPI struct{ caller }

func (m masAPI) pushUser(ctx context.Context, u userState) error {
	if u.Deactivated {
		_, err := m.call(ctx, http.MethodPost, "/_synapse/mas/delete_user", map[string]any{"localpart": u.Localpart, "erase": u.Erased}, nil)
		if notFound(err) {
			return nil // never provisioned: nothing to deactivate
		}
		return err
	}
	var current struct {
		IsDeactivated bool `json:"is_deactivated"`
	}
	_, err := m.call(ctx, http.MethodGet, "/_synapse/mas/query_user?localpart="+url.QueryEscape(u.Localpart), nil, &current)
	switch {
	case notFound(err):
	case err != nil:
		return err
	case current.IsDeactivated:
		if _, err := m.call(ctx, http.MethodPost, "/_synapse/mas/reactivate_user", map[string]any{"localpart": u.Localpart}, nil); err != nil {
			return err
		}
	}
	// The profile is the homeserver's (people change it there): only a
	// display name or avatar set here is pushed, never cleared.
	body := map[string]any{"localpart": u.Localpart}
	if u.DisplayName != "" {
		body["set_displayname"] = u.DisplayName
	}
	if u.AvatarURL != "" {
		body["set_avatar_url"] = u.AvatarURL
	}
	if len(u.Emails) > 0 {
		body["set_emails"] = u.Emails
	} else {
		body["unset_emails"] = true
	}
	_, err = m.call(ctx, http.MethodPost, "/_synapse/mas/provision_user", body, nil)
	return err
}

func (m masAPI) upsertDevice(ctx context.Context, userID string, d db.HomeserverDevice) error {
	body := map[string]any{"localpart": localpart(userID), "device_id": d.DeviceID}
	if d.DisplayName != "" {
		body["display_name"] = d.DisplayName
	}
	_, err := m.call(ctx, http.MethodPost, "/_synapse/mas/upsert_device", body, nil)
	if notFound(err) {
		return errUnknownUser
	}
	return err
}

func (m masAPI) deleteDevice(ctx context.Context, userID, deviceID string) error {
	_, err := m.call(ctx, http.MethodPost, "/_synapse/mas/delete_device", map[string]any{"localpart": localpart(userID), "device_id": deviceID}, nil)
	if notFound(err) {
		return nil
	}
	return err
}

func (m masAPI) syncDevices(ctx context.Context, userID string, devices []db.HomeserverDevice) (int, int, error) {
	ids := make([]string, 0, len(devices))
	for _, d := range devices {
		ids = append(ids, d.DeviceID)
	}
	_, err := m.call(ctx, http.MethodPost, "/_synapse/mas/sync_devices", map[string]any{"localpart": localpart(userID), "devices": ids}, nil)
	if err != nil {
		return 0, 0, err
	}
	// The display names, which sync_devices does not carry.
	for _, d := range devices {
		if d.DisplayName == "" {
			continue
		}
		if _, err := m.call(ctx, http.MethodPost, "/_synapse/mas/update_device_display_name",
			map[string]any{"localpart": localpart(userID), "device_id": d.DeviceID, "display_name": d.DisplayName}, nil); err != nil {
			return 0, 0, err
		}
	}
	// This API does not say what it changed.
	return 0, 0, nil
}

func (m masAPI) localpartAvailable(ctx context.Context, localpart string) error {
	_, err := m.call(ctx, http.MethodGet, "/_synapse/mas/is_localpart_available?localpart="+url.QueryEscape(localpart), nil, nil)
	return refusal(err)
}

func (m masAPI) allowCrossSigningReset(ctx context.Context, userID string) error {
	_, err := m.call(ctx, http.MethodPost, "/_synapse/mas/allow_cross_signing_reset", map[string]any{"localpart": localpart(userID)}, nil)
	return err
}

// adminAPI is Synapse's admin API with an admin token, for Synapse under
// MSC3861 (1.94 and later): users are linked to the introspected sub as
// external ID oauth-delegated, and devices are created here (Synapse 1.94
// does not make them itself).
type adminAPI struct{ caller }

func userPath(userID string) string { return url.PathEscape(userID) }

func (a adminAPI) pushUser(ctx context.Context, u userState) error {
	if u.Deactivated {
		_, err := a.call(ctx, http.MethodPost, "/_synapse/admin/v1/deactivate/"+userPath(u.UserID), map[string]any{"erase": u.Erased}, nil)
		if notFound(err) {
			return nil
		}
		return err
	}
	threepids := []map[string]string{}
	for _, e := range u.Emails {
		threepids = append(threepids, map[string]string{"medium": db.MediumEmail, "address": e})
	}
	body := map[string]any{"threepids": threepids, "locked": u.Locked, "admin": u.Admin,
		"deactivated": false, "external_ids": []map[string]string{{"auth_provider": ExternalIDProvider, "external_id": u.UserID}}}
	// The profile is the homeserver's: only what is set here is pushed.
	if u.DisplayName != "" {
		body["displayname"] = u.DisplayName
	}
	if u.AvatarURL != "" {
		body["avatar_url"] = u.AvatarURL
	}
	_, err := a.call(ctx, http.MethodPut, "/_synapse/admin/v2/users/"+userPath(u.UserID), body, nil)
	if err != nil {
		return err
	}
	// Suspension (Synapse 1.112+); an older Synapse has none to set.
	_, err = a.call(ctx, http.MethodPut, "/_synapse/admin/v1/suspend/"+userPath(u.UserID), map[string]any{"suspend": u.Suspended}, nil)
	if err != nil && !unrecognised(err) {
		return err
	}
	return nil
}

func (a adminAPI) upsertDevice(ctx context.Context, userID string, d db.HomeserverDevice) error {
	devices := "/_synapse/admin/v2/users/" + userPath(userID) + "/devices"
	_, err := a.call(ctx, http.MethodPost, devices, map[string]any{"device_id": d.DeviceID}, nil)
	if notFound(err) {
		return errUnknownUser
	}
	if err != nil || d.DisplayName == "" {
		return err
	}
	_, err = a.call(ctx, http.MethodPut, devices+"/"+url.PathEscape(d.DeviceID), map[string]any{"display_name": d.DisplayName}, nil)
	return err
}

func (a adminAPI) deleteDevice(ctx context.Context, userID, deviceID string) error {
	_, err := a.call(ctx, http.MethodDelete, "/_synapse/admin/v2/users/"+userPath(userID)+"/devices/"+url.PathEscape(deviceID), nil, nil)
	if notFound(err) {
		return nil
	}
	return err
}

func (a adminAPI) syncDevices(ctx context.Context, userID string, devices []db.HomeserverDevice) (int, int, error) {
	var have struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
		} `json:"devices"`
	}
	if _, err := a.call(ctx, http.MethodGet, "/_synapse/admin/v2/users/"+userPath(userID)+"/devices", nil, &have); err != nil {
		return 0, 0, err
	}
	var haveIDs, wantIDs []string
	for _, d := range have.Devices {
		haveIDs = append(haveIDs, d.DeviceID)
	}
	added, removed := 0, 0
	for _, d := range devices {
		wantIDs = append(wantIDs, d.DeviceID)
		if !slices.Contains(haveIDs, d.DeviceID) {
			if err := a.upsertDevice(ctx, userID, d); err != nil {
				return added, removed, err
			}
			added++
		}
	}
	for _, id := range haveIDs {
		if !slices.Contains(wantIDs, id) {
			if err := a.deleteDevice(ctx, userID, id); err != nil {
				return added, removed, err
			}
			removed++
		}
	}
	return added, removed, nil
}

func (a adminAPI) localpartAvailable(ctx context.Context, localpart string) error {
	_, err := a.call(ctx, http.MethodGet, "/_synapse/admin/v1/username_available?username="+url.QueryEscape(localpart), nil, nil)
	return refusal(err)
}

func (a adminAPI) allowCrossSigningReset(ctx context.Context, userID string) error {
	_, err := a.call(ctx, http.MethodPost, "/_synapse/admin/v1/users/"+userPath(userID)+"/_allow_cross_signing_replacement_without_uia", map[string]any{}, nil)
	if unrecognised(err) {
		return ErrUnsupported
	}
	return err
}
