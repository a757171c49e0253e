// Package devices is the management of a user's devices that the client
// API (/devices) and the admin API share: listing, renaming and deleting
// (with the device's tokens, at once).
package devices

import (
	"context"
	"errors"
	"fmt"

	"registrar/db"
	"registrar/impl/matrix"
)

// MaxDisplayNameLength bounds a device's display name, in bytes
// (Synapse's MAX_DEVICE_DISPLAY_NAME_LEN).
const MaxDisplayNameLength = 100

// ErrUnknownDevice is 404 M_NOT_FOUND for a device the user does not have.
var ErrUnknownDevice = matrix.NotFound("Device not found")

// Store is what device management needs of the database.
type Store interface {
	Devices(ctx context.Context, userID string) ([]db.Device, error)
	Device(ctx context.Context, userID, deviceID string) (db.Device, error)
	RenameDevice(ctx context.Context, userID, deviceID, displayName string) error
	CreateDevice(ctx context.Context, userID, deviceID, displayName string) (bool, error)
	DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error
}

// Service manages devices over a store whose deletions revoke tokens.
type Service struct {
	store Store
}

// New returns the service over store.
func New(store Store) *Service { return &Service{store: store} }

// List returns the user's devices, hidden ones left out.
func (s *Service) List(ctx context.Context, userID string) ([]db.Device, error) {
	ds, err := s.store.Devices(ctx, userID)
	if err != nil {
		return nil, matrix.Internal(err)
	}
	return ds, nil
}

// Get returns one of the user's devices.
func (s *Service) Get(ctx context.Context, userID, deviceID string) (db.Device, error) {
	d, err := s.store.Device(ctx, userID, deviceID)
	if errors.Is(err, db.ErrNotFound) {
		return d, ErrUnknownDevice
	}
	if err != nil {
		return d, matrix.Internal(err)
	}
	return d, nil
}

// CheckDisplayName bounds a new display name.
func CheckDisplayName(name string) error {
	if len(name) > MaxDisplayNameLength {
		return matrix.BadRequest(matrix.CodeInvalidParam, fmt.Sprintf("Device display name is too long (max %d)", MaxDisplayNameLength))
	}
	return nil
}

// Rename sets the display name of one of the user's devices.
func (s *Service) Rename(ctx context.Context, userID, deviceID, displayName string) error {
	if err := CheckDisplayName(displayName); err != nil {
		return err
	}
	err := s.store.RenameDevice(ctx, userID, deviceID, displayName)
	if errors.Is(err, db.ErrNotFound) {
		return ErrUnknownDevice
	}
	if err != nil {
		return matrix.Internal(err)
	}
	return nil
}

// Ensure creates the device if the user has none of this ID (an
// application service's, Matrix v1.17) or renames it when a name is
// given; created reports which.
func (s *Service) Ensure(ctx context.Context, userID, deviceID string, displayName *string) (created bool, err error) {
	name := ""
	if displayName != nil {
		if err := CheckDisplayName(*displayName); err != nil {
			return false, err
		}
		name = *displayName
	}
	created, err = s.store.CreateDevice(ctx, userID, deviceID, name)
	if err != nil {
		return false, matrix.Internal(err)
	}
	if !created && displayName != nil {
		return false, s.Rename(ctx, userID, deviceID, name)
	}
	return created, nil
}

// Delete deletes the user's devices among deviceIDs with their access
// and refresh tokens (cached ones included); unknown IDs are ignored.
func (s *Service) Delete(ctx context.Context, userID string, deviceIDs ...string) error {
	if err := s.store.DeleteDevices(ctx, userID, deviceIDs); err != nil {
		return matrix.Internal(err)
	}
	return nil
}
