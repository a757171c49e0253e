package web

import (
	"fmt"
	"math"
	"strconv"
)

// rgb is a colour in 0..255 channels.
type rgb [3]float64

func parseHex(s string) (rgb, bool) {
	if !colorRE.MatchString(s) {
		return rgb{}, false
	}
	var c rgb
	for i := range 3 {
		v, _ := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		c[i] = float64(v)
	}
	return c, true
}

func (c rgb) hex() string {
	return fmt.Sprintf("#%02x%02x%02x", int(math.Round(c[0])), int(math.Round(c[1])), int(math.Round(c[2])))
}

// luminance is WCAG 2.1's relative luminance.
func (c rgb) luminance() float64 {
	var l [3]float64
	for i, v := range c {
		v /= 255
		if v <= 0.03928 {
			l[i] = v / 12.92
		} else {
			l[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

// contrast is WCAG 2.1's contrast ratio of two colours.
func contrast(a, b rgb) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// toward mixes c with target until it has at least ratio's contrast
// against bg (the branding colour kept as far as legibility allows).
func toward(c, target, bg rgb, ratio float64) rgb {
	for step := 0; step <= 20 && contrast(c, bg) < ratio; step++ {
		for i := range c {
			c[i] += (target[i] - c[i]) * 0.1
		}
	}
	return c
}

var (
	white       = rgb{255, 255, 255}
	black       = rgb{0, 0, 0}
	darkSurface = rgb{0x1b, 0x1e, 0x24}
	darkText    = rgb{0x0b, 0x15, 0x12}
)

// brandCSS overrides the style sheet's primary colours with the branding
// colour: for text and buttons on light and dark surfaces, adjusted to
// WCAG AA contrast (4.5:1).
func brandCSS(primary string) string {
	c, ok := parseHex(primary)
	if !ok {
		return ""
	}
	light := toward(c, black, white, 4.6)
	dark := toward(c, white, darkSurface, 4.6)
	dark = toward(dark, white, darkText, 4.6)
	return fmt.Sprintf("\n:root { --primary: %s; --on-primary: #ffffff; }\n@media (prefers-color-scheme: dark) { :root { --primary: %s; --on-primary: %s; } }\n",
		light.hex(), dark.hex(), darkText.hex())
}
