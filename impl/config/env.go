package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// EnvPrefix is the prefix of environment overrides: REGISTRAR_SERVER_NAME
// sets server_name, REGISTRAR_PASSWORD_CONFIG__ENABLED sets
// password_config.enabled (nested keys joined by a double underscore).
const EnvPrefix = "REGISTRAR_"

var durationType, durationPtrType = reflect.TypeOf(Duration{}), reflect.TypeOf(&Duration{})

// applyEnv sets the scalar options of the struct v from PREFIX_<YAML_KEY>
// variables, recursing into nested sections with a double underscore.
func applyEnv(v reflect.Value, prefix string, getenv func(string) string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fv := v.Field(i)
		switch {
		case !f.IsExported() || key == "-":
		case key == "" && opts == "inline" && f.Type.Kind() == reflect.Struct:
			if err := applyEnv(fv, prefix, getenv); err != nil {
				return err
			}
		case key == "":
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			if err := applyEnv(fv, prefix+strings.ToUpper(key)+"__", getenv); err != nil {
				return err
			}
		default:
			name := prefix + strings.ToUpper(key)
			if s := getenv(name); s != "" {
				if err := setFromEnv(fv, s); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
		}
	}
	return nil
}

// setFromEnv parses s into the scalar option fv; options of other kinds
// (lists, maps) are left to the file.
func setFromEnv(fv reflect.Value, s string) error {
	switch {
	case fv.Type() == durationType || fv.Type() == durationPtrType:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		if fv.Kind() == reflect.Pointer {
			fv.Set(reflect.ValueOf(&Duration{d}))
		} else {
			fv.Set(reflect.ValueOf(Duration{d}))
		}
	case fv.Kind() == reflect.String:
		fv.SetString(s)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", s)
		}
		fv.SetBool(b)
	case fv.Kind() == reflect.Int || fv.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		fv.SetInt(n)
	case fv.Kind() == reflect.Uint8 || fv.Kind() == reflect.Uint32:
		n, err := strconv.ParseUint(s, 10, fv.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer", s)
		}
		fv.SetUint(n)
	case fv.Kind() == reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		fv.SetFloat(n)
	}
	return nil
}
