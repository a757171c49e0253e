package db

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// DeleteDevice deletes one device with its tokens.
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	return s.DeleteDevices(ctx, userID, []string{deviceID})
}

// DeleteDevices deletes the user's devices among deviceIDs, with their
// tokens, in one transaction; IDs of no device are ignored.
func (s *Store) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error {
	if len(deviceIDs) == 0 {
		return nil
	}
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		return tx.Where("user_id = ? AND device_id IN ?", userID, deviceIDs).Delete(&Device{}).Error
	}))
}

// DeleteAllDevices deletes every device of the user with their tokens,
// and ends the user's browser sign-ins, remembered consents and unspent
// login tokens (POST /logout/all), in one transaction.
func (s *Store) DeleteAllDevices(ctx context.Context, userID string) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		if err := endSignIns(tx, userID); err != nil {
			return err
		}
		return tx.Where("user_id = ?", userID).Delete(&Device{}).Error
	}))
}

// Devices lists the user's devices (hidden ones left out), by device ID.
func (s *Store) Devices(ctx context.Context, userID string) ([]Device, error) {
	var ds []Device
	err := s.db.WithContext(ctx).Where("user_id = ? AND NOT hidden", userID).Order("device_id").Find(&ds).Error
	return ds, translate(err)
}

// Device returns one of the user's devices; a hidden one is ErrNotFound.
func (s *Store) Device(ctx context.Context, userID, deviceID string) (Device, error) {
	var d Device
	err := s.db.WithContext(ctx).Where("user_id = ? AND device_id = ? AND NOT hidden", userID, deviceID).Take(&d).Error
	return d, translate(err)
}

// RenameDevice sets a device's display name; ErrNotFound when the user
// has no such (visible) device.
func (s *Store) RenameDevice(ctx context.Context, userID, deviceID, displayName string) error {
	return translate(s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Device{}).Where("user_id = ? AND device_id = ? AND NOT hidden", userID, deviceID).
			Update("display_name", displayName)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	}))
}

// CreateDevice creates a device without tokens (an application service's,
// Matrix v1.17); created is false when it existed already.
func (s *Store) CreateDevice(ctx context.Context, userID, deviceID, displayName string) (created bool, err error) {
	now := s.nowMS()
	err = s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&Device{UserID: userID, DeviceID: deviceID, DisplayName: displayName, CreatedAt: now})
		created = res.RowsAffected == 1
		return res.Error
	})
	return created, translate(err)
}
