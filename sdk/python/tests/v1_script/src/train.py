# A typical Azure ML SDK v1 training script. Changed from its azureml-core form: the import only.
import argparse
import os
import struct
import sys
import zlib

from paddock import Run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()

run = Run.get_context()
print("python", sys.version.split()[0], "venv" if sys.prefix != sys.base_prefix else "system")
try:
    import v1helper  # the environment's pip package
    print("v1helper", v1helper.VALUE)
except ImportError:
    print("v1helper is not installed")

loss = 1.0
for epoch in range(args.epochs):
    loss = loss / 2
    run.log("loss", loss)
    run.log_row("curve", epoch=epoch, loss=loss)
run.log("accuracy", 0.93)
run.log("optimizer", "adam")


def png(width, height):
    """A grey PNG image, without any imaging library."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


with open("loss.png", "wb") as f:
    f.write(png(4, 4))
run.log_image("loss plot", path="loss.png")
run.tag("stage", "trained")

os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as f:
    f.write("weights")
with open("notes.txt", "w") as f:
    f.write("trained for %d epochs" % args.epochs)
run.upload_file(name="notes/notes.txt", path_or_stream="notes.txt")
print("training done")
