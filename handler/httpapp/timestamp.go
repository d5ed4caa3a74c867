package httpapp

import "time"

// timestampLayout is RFC 3339 with exactly three fractional digits; callers convert to UTC first so the zone
// prints as "Z".
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTimestamp appends t in UTC as timestampLayout formats it. Every request carries one, and
// Time.AppendFormat interprets its layout on each call; this writes the fixed shape directly. Years outside
// 0-9999, which the fixed shape cannot hold, go through AppendFormat.
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timestampLayout)
	}
	hour, minute, second := t.Clock()
	milli := t.Nanosecond() / int(time.Millisecond)
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	b = append(b, '.')
	b = appendDigits(b, milli, 3)
	return append(b, 'Z')
}

// appendDigits appends v (not negative, below 10^width) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}
