package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"registrar/impl/appservice"
	"registrar/impl/secrets"
)

// resolve reads what the configuration points at: the secrets (the
// macaroon key generated in the data directory when not given) and the
// application service files. It runs once.
func (c *Config) resolve() error {
	if c.resolved.done {
		return nil
	}
	if err := c.checkDataDirectory(); err != nil {
		return err
	}
	var r resolved
	var err error
	if r.sharedSecret, err = c.readSharedSecret(); err != nil {
		return err
	}
	if r.captchaSecret, err = c.readCaptchaSecret(); err != nil {
		return err
	}
	if r.appServices, err = appservice.Load(c.AppServiceConfigFiles); err != nil {
		return fmt.Errorf("app_service_config_files: %w", err)
	}
	if r.secretKey, err = c.readSecretKey(); err != nil {
		return err
	}
	if err := c.resolveHomeserver(); err != nil {
		return err
	}
	r.done = true
	c.resolved = r
	return nil
}

// SetSecretKey sets the secret key kept with the database, when the
// configuration gives none.
func (c *Config) SetSecretKey(key []byte) error {
	if len(key) < 16 {
		return errors.New("macaroon_secret_key must be at least 16 characters")
	}
	c.resolved.secretKey = key
	return nil
}

// checkDataDirectory refuses a data directory others may write to: they
// could replace the database or the secret key.
func (c *Config) checkDataDirectory() error {
	info, err := os.Stat(c.DataDirectory)
	if errors.Is(err, os.ErrNotExist) {
		return nil // created 0700
	}
	if err != nil {
		return fmt.Errorf("data_directory: %w", err)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("data_directory %s is writable by group or others (mode %04o); run chmod go-w on it", c.DataDirectory, info.Mode().Perm())
	}
	return nil
}

// readSecretKey reads macaroon_secret_key or its file; nil when neither
// is set (then the server uses a key kept with its database:
// UseSecretKeyFile for SQLite, the database itself for PostgreSQL).
func (c *Config) readSecretKey() ([]byte, error) {
	var key []byte
	switch {
	case c.MacaroonSecretKey != "":
		key = []byte(c.MacaroonSecretKey)
	case c.MacaroonSecretKeyPath != "":
		b, err := os.ReadFile(c.MacaroonSecretKeyPath)
		if err != nil {
			return nil, fmt.Errorf("macaroon_secret_key_path: %w", err)
		}
		key = bytes.TrimSpace(b)
	default:
		return nil, nil
	}
	if len(key) < 16 {
		return nil, errors.New("macaroon_secret_key must be at least 16 characters")
	}
	return key, nil
}

// UseSecretKeyFile reads the secret key generated under the data
// directory, generating it (owner-only) the first time: the key of an
// SQLite deployment, which shares its data directory.
func (c *Config) UseSecretKeyFile() error {
	path := filepath.Join(c.DataDirectory, "macaroon_secret_key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(c.DataDirectory, 0o700); err != nil {
			return fmt.Errorf("data_directory: %w", err)
		}
		b = []byte(secrets.RandomString(48))
		if err := writePrivate(path, b); err != nil {
			return fmt.Errorf("data_directory: cannot write %s: %w", path, err)
		}
	} else if err != nil {
		return fmt.Errorf("data_directory: cannot read %s: %w", path, err)
	}
	return c.SetSecretKey(bytes.TrimSpace(b))
}

func (c *Config) readCaptchaSecret() (string, error) {
	if p := c.Captcha.RecaptchaPrivateKeyPath; p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("recaptcha_private_key_path: %w", err)
		}
		return string(bytes.TrimSpace(b)), nil
	}
	return c.Captcha.RecaptchaPrivateKey, nil
}

func (c *Config) readSharedSecret() ([]byte, error) {
	if c.RegistrationSharedSecret != "" && c.RegistrationSharedSecretPath != "" {
		return nil, errors.New("registration_shared_secret and registration_shared_secret_path are both set; keep one")
	}
	if c.RegistrationSharedSecretPath == "" {
		return []byte(c.RegistrationSharedSecret), nil
	}
	b, err := os.ReadFile(c.RegistrationSharedSecretPath)
	if err != nil {
		return nil, fmt.Errorf("registration_shared_secret_path: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("registration_shared_secret_path: the file is empty")
	}
	return b, nil
}

// writePrivate writes a new file readable by its owner only, whatever the
// umask.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
