package impl

import (
	"context"

	"registrar/api"
	"registrar/db"
)

func adminDeviceJSON(d db.Device) api.AdminDevice {
	out := api.AdminDevice{DeviceId: d.DeviceID, UserId: d.UserID, LastSeenTs: d.LastSeenAt, Dehydrated: ptrTo(false)}
	if d.DisplayName != "" {
		out.DisplayName = &d.DisplayName
	}
	if d.LastSeenIP != "" {
		out.LastSeenIp = &d.LastSeenIP
		out.LastSeenUserAgent = &d.LastSeenUserAgent
	}
	return out
}

// ListDevicesAdmin is GET /_synapse/admin/v2/users/{userId}/devices.
func (s *Server) ListDevicesAdmin(ctx context.Context, req api.ListDevicesAdminRequestObject) (api.ListDevicesAdminResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	list, err := s.users.Devices(ctx, req.UserId)
	if err != nil {
		return nil, err
	}
	out := make([]api.AdminDevice, len(list))
	for i, d := range list {
		out[i] = adminDeviceJSON(d)
	}
	return api.ListDevicesAdmin200JSONResponse{Devices: out, Total: len(out)}, nil
}

// GetDeviceAdmin is GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}.
func (s *Server) GetDeviceAdmin(ctx context.Context, req api.GetDeviceAdminRequestObject) (api.GetDeviceAdminResponseObject, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	d, err := s.users.Device(ctx, req.UserId, req.DeviceId)
	if err != nil {
		return nil, err
	}
	return api.GetDeviceAdmin200JSONResponse(adminDeviceJSON(d)), nil
}

// UpdateDeviceAdmin is PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}.
func (s *Server) UpdateDeviceAdmin(ctx context.Context, req api.UpdateDeviceAdminRequestObject) (api.UpdateDeviceAdminResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	if req.Body.DisplayName != nil {
		err = s.users.RenameDevice(ctx, actor, req.UserId, req.DeviceId, *req.Body.DisplayName)
	} else {
		_, err = s.users.Device(ctx, req.UserId, req.DeviceId)
	}
	if err != nil {
		return nil, err
	}
	return api.UpdateDeviceAdmin200JSONResponse{}, nil
}

// DeleteDeviceAdmin is DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}.
func (s *Server) DeleteDeviceAdmin(ctx context.Context, req api.DeleteDeviceAdminRequestObject) (api.DeleteDeviceAdminResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.users.DeleteDevices(ctx, actor, req.UserId, []string{req.DeviceId}); err != nil {
		return nil, err
	}
	return api.DeleteDeviceAdmin200JSONResponse{}, nil
}

// DeleteDevicesAdmin is POST /_synapse/admin/v2/users/{userId}/delete_devices.
func (s *Server) DeleteDevicesAdmin(ctx context.Context, req api.DeleteDevicesAdminRequestObject) (api.DeleteDevicesAdminResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.users.DeleteDevices(ctx, actor, req.UserId, req.Body.Devices); err != nil {
		return nil, err
	}
	return api.DeleteDevicesAdmin200JSONResponse{}, nil
}
