package dedup

import "strings"

// hashSlot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key, or of its hash tag (the part
// between the first '{' and the next '}', when not empty), modulo 16384.
func hashSlot(key string) uint16 {
	return crc16(hashTag(key)) & 16383
}

// hashTag returns the part of key that decides where it is stored: its hash tag (the part between the first
// '{' and the next '}', when not empty), else the whole key. Redis Cluster and go-redis's Ring both place keys
// by it.
func hashTag(key string) string {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key[open+1 : open+1+end]
		}
	}
	return key
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses for slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()
