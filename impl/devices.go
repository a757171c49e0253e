package impl

import (
	"context"
	"net/http"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/uia"
)

func deviceJSON(d db.Device) api.Device {
	out := api.Device{DeviceId: d.DeviceID, LastSeenTs: d.LastSeenAt}
	if d.DisplayName != "" {
		out.DisplayName = &d.DisplayName
	}
	if d.LastSeenIP != "" {
		out.LastSeenIp = &d.LastSeenIP
	}
	return out
}

// GetDevices is GET /_matrix/client/v3/devices.
func (s *Server) GetDevices(ctx context.Context, _ api.GetDevicesRequestObject) (api.GetDevicesResponseObject, error) {
	list, err := s.devices.List(ctx, requesterFrom(ctx).UserID)
	if err != nil {
		return nil, err
	}
	out := make([]api.Device, len(list))
	for i, d := range list {
		out[i] = deviceJSON(d)
	}
	return api.GetDevices200JSONResponse{Devices: out}, nil
}

// GetDevice is GET /_matrix/client/v3/devices/{deviceId}.
func (s *Server) GetDevice(ctx context.Context, req api.GetDeviceRequestObject) (api.GetDeviceResponseObject, error) {
	d, err := s.devices.Get(ctx, requesterFrom(ctx).UserID, req.DeviceId)
	if err != nil {
		return nil, err
	}
	return api.GetDevice200JSONResponse(deviceJSON(d)), nil
}

// UpdateDevice is PUT /_matrix/client/v3/devices/{deviceId}: renames a
// device; an application service creates its user's device (201, Matrix
// v1.17). A suspended account may not rename (v1.13).
func (s *Server) UpdateDevice(ctx context.Context, req api.UpdateDeviceRequestObject) (api.UpdateDeviceResponseObject, error) {
	who := requesterFrom(ctx)
	if who.Suspended {
		return nil, matrix.ErrUserSuspended
	}
	if who.AppService != nil {
		created, err := s.devices.Ensure(ctx, who.UserID, req.DeviceId, req.Body.DisplayName)
		if err != nil {
			return nil, err
		}
		if created {
			return api.UpdateDevice201JSONResponse{}, nil
		}
		return api.UpdateDevice200JSONResponse{}, nil
	}
	var err error
	if req.Body.DisplayName != nil {
		err = s.devices.Rename(ctx, who.UserID, req.DeviceId, *req.Body.DisplayName)
	} else {
		_, err = s.devices.Get(ctx, who.UserID, req.DeviceId)
	}
	if err != nil {
		return nil, err
	}
	return api.UpdateDevice200JSONResponse{}, nil
}

// DeleteDevice is DELETE /_matrix/client/v3/devices/{deviceId}: after
// User-Interactive Authentication (none for an application service), the
// device and its tokens go at once.
func (s *Server) DeleteDevice(ctx context.Context, req api.DeleteDeviceRequestObject) (api.DeleteDeviceResponseObject, error) {
	var auth *api.AuthData
	if req.Body != nil {
		auth = req.Body.Auth
	}
	if err := s.deleteDevices(ctx, devicesPath+"/"+req.DeviceId, auth, []string{req.DeviceId}); err != nil {
		return nil, err
	}
	return api.DeleteDevice200JSONResponse{}, nil
}

// DeleteDevices is POST /_matrix/client/v3/delete_devices.
func (s *Server) DeleteDevices(ctx context.Context, req api.DeleteDevicesRequestObject) (api.DeleteDevicesResponseObject, error) {
	if err := s.deleteDevices(ctx, deleteDevicesPath, req.Body.Auth, req.Body.Devices); err != nil {
		return nil, err
	}
	return api.DeleteDevices200JSONResponse{}, nil
}

const (
	devicesPath       = "/_matrix/client/v3/devices"
	deleteDevicesPath = "/_matrix/client/v3/delete_devices"
)

// deleteDevices deletes the requester's devices, after the user proves
// it is them (the session is spent on this one deletion).
func (s *Server) deleteDevices(ctx context.Context, path string, auth *api.AuthData, ids []string) error {
	who := requesterFrom(ctx)
	if who.AppService != nil {
		return s.devices.Delete(ctx, who.UserID, ids...)
	}
	if who.IsGuest {
		return matrix.ErrGuestForbidden
	}
	return s.protect(ctx, s.uiaRequest(ctx, http.MethodPost, path, auth, s.reauthFlows(ctx)), func(*uia.Session) error {
		return s.devices.Delete(ctx, who.UserID, ids...)
	})
}
