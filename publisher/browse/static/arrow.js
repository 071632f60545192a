// Column types from a table's `structure.arrow_schema` (an Arrow IPC schema message, base64 in a
// data: URL). Hand-written flatbuffer reading of Schema.fbs/Message.fbs: the Arrow JS library
// alone weighs more than the page's whole 200 KB budget, and we need only names and types.
// Type names are spelled as pyarrow prints them (`str(field.type)`): int64, double, string,
// timestamp[us, tz=UTC], list<item: int64>, ...

/** A little-endian flatbuffer reader: tables through their vtables, offsets made absolute. */
class Buffer {
  constructor(bytes) { this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); this.bytes = bytes; }
  u8(p) { return this.v.getUint8(p); }
  i16(p) { return this.v.getInt16(p, true); }
  i32(p) { return this.v.getInt32(p, true); }
  /** Position of field `i` of the table at `t`, or 0 when absent (its default applies). */
  field(t, i) {
    const vt = t - this.i32(t);
    const o = 4 + 2 * i;
    return o < this.v.getUint16(vt, true) ? (this.v.getUint16(vt + o, true) && t + this.v.getUint16(vt + o, true)) : 0;
  }
  ref(p) { return p + this.v.getUint32(p, true); }
  table(t, i) { const p = this.field(t, i); return p ? this.ref(p) : 0; }
  int(t, i, d = 0) { const p = this.field(t, i); return p ? this.i32(p) : d; }
  short(t, i, d = 0) { const p = this.field(t, i); return p ? this.i16(p) : d; }
  byte(t, i, d = 0) { const p = this.field(t, i); return p ? this.u8(p) : d; }
  string(t, i) {
    const p = this.field(t, i);
    if (!p) return null;
    const s = this.ref(p);
    return new TextDecoder().decode(this.bytes.subarray(s + 4, s + 4 + this.v.getUint32(s, true)));
  }
  /** The tables of a vector field. */
  tables(t, i) {
    const p = this.field(t, i);
    if (!p) return [];
    const vec = this.ref(p);
    return Array.from({ length: this.v.getUint32(vec, true) }, (_, k) => this.ref(vec + 4 + 4 * k));
  }
}

const UNITS = ['s', 'ms', 'us', 'ns'];
const INTERVALS = ['month_interval', 'day_time_interval', 'month_day_nano_interval'];

/** The pyarrow name of field `f`'s type (Schema.fbs's Type union, member numbers as there). */
function typeName(b, f) {
  const t = b.table(f, 3);
  const kids = () => b.tables(f, 5).map((c) => `${b.string(c, 0) ?? ''}: ${typeName(b, c)}`);
  switch (b.byte(f, 2)) {
    case 1: return 'null';
    case 2: return `${b.byte(t, 1) ? '' : 'u'}int${b.int(t, 0)}`;
    case 3: return ['halffloat', 'float', 'double'][b.short(t, 0)];
    case 4: return 'binary';
    case 5: return 'string';
    case 6: return 'bool';
    case 7: return `decimal${b.int(t, 2, 128)}(${b.int(t, 0)}, ${b.int(t, 1)})`;
    case 8: return b.short(t, 0, 1) === 0 ? 'date32[day]' : 'date64[ms]';
    case 9: return `time${b.int(t, 1, 32)}[${UNITS[b.short(t, 0, 1)]}]`;
    case 10: {
      const tz = b.string(t, 1);
      return `timestamp[${UNITS[b.short(t, 0)]}${tz ? `, tz=${tz}` : ''}]`;
    }
    case 11: return INTERVALS[b.short(t, 0)];
    case 12: return `list<${kids()[0]}>`;
    case 13: return `struct<${kids().join(', ')}>`;
    case 14: return `union<${kids().join(', ')}>`;
    case 15: return `fixed_size_binary[${b.int(t, 0)}]`;
    case 16: return `fixed_size_list<${kids()[0]}>[${b.int(t, 0)}]`;
    case 17: { // map's one child is a struct of key and value
      const [entries] = b.tables(f, 5);
      const [k, v] = b.tables(entries, 5);
      return `map<${typeName(b, k)}, ${typeName(b, v)}${b.byte(t, 0) ? ', keys_sorted' : ''}>`;
    }
    case 18: return `duration[${UNITS[b.short(t, 0, 1)]}]`;
    case 19: return 'large_binary';
    case 20: return 'large_string';
    case 21: return `large_list<${kids()[0]}>`;
    case 22: return `run_end_encoded<${kids().join(', ')}>`;
    case 23: return 'binary_view';
    case 24: return 'string_view';
    case 25: return `list_view<${kids()[0]}>`;
    case 26: return `large_list_view<${kids()[0]}>`;
    default: return 'unknown';
  }
}

/** A dictionary-encoded field names its index type and the value type. */
function fieldType(b, f) {
  const d = b.table(f, 4);
  if (!d) return typeName(b, f);
  const index = b.table(d, 1);
  const indices = index ? `${b.byte(index, 1) ? '' : 'u'}int${b.int(index, 0)}` : 'int32';
  return `dictionary<values=${typeName(b, f)}, indices=${indices}, ordered=${b.byte(d, 2)}>`;
}

/** `structure.arrow_schema` (data: URL or bare base64) → [{name, type, nullable}], in column order. */
export function arrowSchema(encoded) {
  const base64 = encoded.slice(encoded.indexOf(',') + 1);
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const b = new Buffer(bytes);
  // encapsulated message: 0xFFFFFFFF continuation (absent before Arrow 0.15), int32 length, flatbuffer
  const start = b.i32(0) === -1 ? 8 : 4;
  const fb = new Buffer(bytes.subarray(start));
  const message = fb.ref(0);
  if (fb.byte(message, 1) !== 1) throw new Error('arrow_schema is not a Schema message');
  const schema = fb.table(message, 2);
  return fb.tables(schema, 1).map((f) => ({ name: fb.string(f, 0) ?? '', type: fieldType(fb, f), nullable: Boolean(fb.byte(f, 1)) }));
}
