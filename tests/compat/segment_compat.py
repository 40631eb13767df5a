"""Cross-check internode's frames against the DataStax Python driver's segments.

The CQL native protocol v5 "segments" are the frames of Cassandra 4.0 internode
messaging. Usage: segment_compat.py DIR, where DIR holds, per case NAME listed in
DIR/cases.txt, the original payload (NAME.payload) and internode's encodings of it
(NAME.crc.rs, NAME.lz4.rs). This script decodes internode's encodings with the
driver, checks them, and writes the driver's encodings as NAME.crc.py and NAME.lz4.py
for the Rust side to check in turn.
"""
import io
import sys

from cassandra.connection import segment_codec_lz4, segment_codec_no_compression
from cassandra.segment import Segment

CODECS = {"crc": segment_codec_no_compression, "lz4": segment_codec_lz4}


def decode_all(codec, data):
    """Decode a whole stream of segments; returns [(payload, self_contained)]."""
    buf = io.BytesIO(data)
    out = []
    while buf.tell() < len(data):
        header = codec.decode_header(buf)
        segment = codec.decode(buf, header)
        out.append((bytes(segment.payload), segment.is_self_contained))
    return out


def main(directory):
    assert segment_codec_lz4 is not None, "the lz4 package is missing"
    with open(f"{directory}/cases.txt") as f:
        names = [line.strip() for line in f if line.strip()]
    checked = 0
    for name in names:
        with open(f"{directory}/{name}.payload", "rb") as f:
            payload = f.read()
        expect_split = len(payload) > Segment.MAX_PAYLOAD_LENGTH
        for kind, codec in CODECS.items():
            with open(f"{directory}/{name}.{kind}.rs", "rb") as f:
                ours = f.read()
            segments = decode_all(codec, ours)
            joined = b"".join(p for p, _ in segments)
            if joined != payload:
                raise SystemExit(f"{name}.{kind}: decoded payload differs")
            for p, self_contained in segments:
                if self_contained == expect_split:
                    raise SystemExit(f"{name}.{kind}: wrong self-contained flag")
                if len(p) > Segment.MAX_PAYLOAD_LENGTH:
                    raise SystemExit(f"{name}.{kind}: segment too long")
            theirs = io.BytesIO()
            codec.encode(theirs, payload)
            with open(f"{directory}/{name}.{kind}.py", "wb") as f:
                f.write(theirs.getvalue())
            checked += 1
    print(f"python driver decoded {checked} internode encodings")


if __name__ == "__main__":
    main(sys.argv[1])
