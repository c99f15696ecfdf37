package logging

import (
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// encoderConfig is the JSON layout of both loggers: zap's production keys
// (level, logger, msg, caller, stacktrace), "ts" in UTC ISO 8601 with
// milliseconds, durations in seconds.
func encoderConfig() zapcore.EncoderConfig {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = ISO8601UTC
	return enc
}

// accessEncoder writes the access log's lines. It is zap's JSON encoder
// with a shortcut for the line written on every request: when every key
// and string is plain (printable ASCII without '"' or '\', so nothing to
// escape) and every field is a string, an integer or a duration, the line
// is appended directly, byte for byte what the JSON encoder would write.
// Anything else (another field type, a string to escape, a caller or a
// stack trace, fields added with With) goes to the JSON encoder itself.
type accessEncoder struct {
	zapcore.Encoder // the JSON encoder, for everything but plain lines
	cfg             zapcore.EncoderConfig
	fast            bool // false once cloned: With may have added fields only the JSON encoder holds
}

var accessBuffers = buffer.NewPool()

// newAccessEncoder returns the access log's encoder for encoderConfig().
func newAccessEncoder() zapcore.Encoder {
	cfg := encoderConfig()
	return &accessEncoder{Encoder: zapcore.NewJSONEncoder(cfg), cfg: cfg, fast: true}
}

// Clone returns a JSON encoder's clone without the shortcut.
func (e *accessEncoder) Clone() zapcore.Encoder {
	return &accessEncoder{Encoder: e.Encoder.Clone(), cfg: e.cfg}
}

// EncodeEntry encodes one line.
func (e *accessEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	if !e.fast || !plainEntry(ent, fields) {
		return e.Encoder.EncodeEntry(ent, fields)
	}
	buf := accessBuffers.Get()
	// Appending to a plain slice inlines; the buffer takes it at the end
	// (the same array unless a line outgrew it).
	b := append(buf.Bytes()[:0], '{')
	b = appendKey(b, e.cfg.LevelKey)
	b = appendPlain(b, ent.Level.String())
	if !ent.Time.IsZero() {
		b = appendKey(b, e.cfg.TimeKey)
		b = append(b, '"')
		b = appendISO8601UTC(b, ent.Time)
		b = append(b, '"')
	}
	if ent.LoggerName != "" {
		b = appendKey(b, e.cfg.NameKey)
		b = appendPlain(b, ent.LoggerName)
	}
	b = appendKey(b, e.cfg.MessageKey)
	b = appendPlain(b, ent.Message)
	for i := range fields {
		f := &fields[i]
		b = appendKey(b, f.Key)
		switch f.Type {
		case zapcore.StringType:
			b = appendPlain(b, f.String)
		case zapcore.Int64Type:
			b = strconv.AppendInt(b, f.Integer, 10)
		case zapcore.DurationType:
			// zap's SecondsDurationEncoder, through buffer.AppendFloat.
			b = strconv.AppendFloat(b, float64(time.Duration(f.Integer))/float64(time.Second), 'f', -1, 64)
		}
	}
	b = append(b, '}')
	b = append(b, e.cfg.LineEnding...)
	buf.Reset()
	_, _ = buf.Write(b)
	return buf, nil
}

// appendKey appends `,"key":` (no comma right after the opening brace).
func appendKey(b []byte, key string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = appendPlain(b, key)
	return append(b, ':')
}

func appendPlain(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainEntry reports whether the shortcut writes ent and fields exactly as
// the JSON encoder would.
func plainEntry(ent zapcore.Entry, fields []zapcore.Field) bool {
	if ent.Caller.Defined || ent.Stack != "" || !plain(ent.LoggerName) || !plain(ent.Message) {
		return false
	}
	for i := range fields {
		f := &fields[i]
		if !plain(f.Key) {
			return false
		}
		switch f.Type {
		case zapcore.StringType:
			if !plain(f.String) {
				return false
			}
		case zapcore.Int64Type, zapcore.DurationType:
			// A duration in seconds from an int64 is never NaN or
			// infinite, which the JSON encoder would quote.
		default:
			return false
		}
	}
	return true
}

// plain reports whether s is printable ASCII without '"' or '\', which
// JSON (and zap's escaping) leaves as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
