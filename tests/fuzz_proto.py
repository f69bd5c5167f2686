"""Hypothesis strategies for any protobuf message, built from its descriptor, and
wire-level mutations (truncation, garbage, invalid UTF-8 in a string field).

Values lean to the edges: 0, -1, the type's extremes, NaN and infinities,
unknown enum numbers, empty and over-long strings, NUL bytes, and now and then
a repeated field or map blown up to thousands of entries.
"""
from __future__ import annotations

from google.protobuf import descriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = descriptor.FieldDescriptor
BLOW_UP = 2500  # entries in a blown-up repeated field or map


def _ints(bits: int, signed: bool):
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    edges = sorted({lo, hi, 0, 1, min(hi, 1000), max(lo, -1)})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi), st.integers(-3, 50).filter(lambda v: lo <= v <= hi))


_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "default", "issue", "\x00", "a" * 513, "é" * 300, "../../etc/passwd", "/tmp/x",
                     "🙂" * 50]),
    st.integers(60, 20000).map(lambda n: "x" * n),
)

_SCALARS = {
    F.TYPE_INT32: _ints(32, True), F.TYPE_SINT32: _ints(32, True), F.TYPE_SFIXED32: _ints(32, True),
    F.TYPE_INT64: _ints(64, True), F.TYPE_SINT64: _ints(64, True), F.TYPE_SFIXED64: _ints(64, True),
    F.TYPE_UINT32: _ints(32, False), F.TYPE_FIXED32: _ints(32, False),
    F.TYPE_UINT64: _ints(64, False), F.TYPE_FIXED64: _ints(64, False),
    F.TYPE_FLOAT: st.floats(width=32), F.TYPE_DOUBLE: st.floats(),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_STRING: _TEXT,
    F.TYPE_BYTES: st.binary(max_size=64),
}


def _blow_up(items):
    """A list, sometimes repeated to thousands of entries."""
    return st.tuples(st.lists(items, max_size=4), st.sampled_from([1] * 9 + [BLOW_UP])).map(
        lambda t: (t[0] * t[1])[:max(len(t[0]), min(len(t[0]) * t[1], BLOW_UP))])


def _enum(field):
    numbers = [v.number for v in field.enum_type.values]
    return st.one_of(st.sampled_from(numbers), _ints(32, True))


def _single(field, depth: int, overrides):
    if field.name in overrides:
        return overrides[field.name]
    if field.type == F.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1, overrides)
    if field.type == F.TYPE_ENUM:
        return _enum(field)
    return _SCALARS[field.type]


def messages(desc: descriptor.Descriptor, depth: int = 0, overrides=None):
    """A strategy for messages of type `desc` (as plain field dicts, see build())."""
    overrides = overrides or {}
    if depth > 4:
        return st.just({})
    optional = {}
    for field in desc.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_f, val_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            pairs = st.tuples(_single(key_f, depth, {}), _single(val_f, depth, {}))
            optional[field.name] = _blow_up(pairs)
        elif field.is_repeated:
            optional[field.name] = _blow_up(_single(field, depth, overrides))
        else:
            optional[field.name] = _single(field, depth, overrides)
    return st.fixed_dictionaries({}, optional=optional)


MAX_BYTES = 96 << 20  # past the daemon's 64 MiB message limit, so that refusal is exercised too


def small_enough(values, limit: int = MAX_BYTES) -> bool:
    """Whether `values` would build a message of at most about `limit` bytes. A blown-up
    repeated field of messages that hold blown-up maps of long strings multiplies out to
    gigabytes (a long run generated one of 17 GB in the test process itself): such values
    are skipped before they are built. Shared references count each time, as build() copies."""
    budget = [limit]

    def walk(v) -> bool:
        if isinstance(v, (str, bytes)):
            budget[0] -= len(v) + 2
        elif isinstance(v, dict):
            return all(walk(x) for x in v.values())
        elif isinstance(v, (list, tuple)):
            return all(walk(x) for x in v)
        else:
            budget[0] -= 8
        return budget[0] >= 0

    return walk(values)


def build(cls, values: dict) -> Message:
    msg = cls()
    _fill(msg, values)
    return msg


def _fill(msg: Message, values: dict) -> None:
    desc = msg.DESCRIPTOR
    for name, value in values.items():
        field = desc.fields_by_name[name]
        target = getattr(msg, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            val_f = field.message_type.fields_by_name["value"]
            for k, v in value:
                if val_f.type == F.TYPE_MESSAGE:
                    _fill(target[k], v)
                else:
                    target[k] = v
        elif field.is_repeated:
            for v in value:
                if field.type == F.TYPE_MESSAGE:
                    _fill(target.add(), v)
                else:
                    target.append(v)
        elif field.type == F.TYPE_MESSAGE:
            target.SetInParent()
            _fill(target, value)
        else:
            setattr(msg, name, value)


# ---------------------------------------------------------------- wire mutations

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def invalid_utf8_field(desc: descriptor.Descriptor, pick: int) -> bytes:
    """A length-delimited entry for one of the message's string fields (or a nested
    message's), whose bytes are not UTF-8: protobuf refuses such a string."""
    bad = b"ok\xc3\x28\xff\xfe"
    strings = [f for f in desc.fields if f.type == F.TYPE_STRING]
    if strings:
        f = strings[pick % len(strings)]
        return varint(f.number << 3 | 2) + varint(len(bad)) + bad
    nested = [f for f in desc.fields if f.type == F.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry]
    if nested:
        f = nested[pick % len(nested)]
        inner = invalid_utf8_field(f.message_type, pick)
        return varint(f.number << 3 | 2) + varint(len(inner)) + inner
    return bad


def deep_nesting(desc: descriptor.Descriptor, depth: int = 5000) -> bytes:
    """One message field opened `depth` times (past protobuf's recursion limit of 100)."""
    nested = [f for f in desc.fields if f.type == F.TYPE_MESSAGE]
    number = nested[0].number if nested else 15
    payload = b""
    for _ in range(depth):
        payload = varint(number << 3 | 2) + varint(len(payload)) + payload
    return payload


def mutations():
    """(kind, argument) applied to a serialized request by `mutate`."""
    return st.one_of(
        st.just(("none", 0)),  # listed thrice: most requests are well-formed protobuf
        st.just(("none", 0)),
        st.just(("none", 0)),
        st.tuples(st.just("truncate"), st.integers(0, 10_000)),
        st.tuples(st.just("garbage"), st.integers(0, 2 ** 32)),
        st.tuples(st.just("utf8"), st.integers(0, 100)),
        st.just(("nest", 0)),
    )


def mutate(data: bytes, desc: descriptor.Descriptor, kind: str, arg: int) -> bytes:
    import random
    if kind == "truncate":
        return data[:arg % (len(data) + 1)]
    if kind == "garbage":
        rnd = random.Random(arg)
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 200)))
        return junk if arg % 2 else data + junk
    if kind == "utf8":
        return data + invalid_utf8_field(desc, arg)
    if kind == "nest":
        return data + deep_nesting(desc)
    return data
