#!/usr/bin/env python3
"""Reads a TensorBoard event folder with TensorBoard's own loader and checks its scalars.

usage: check_tfevents.py DIR TAG:STEP:VALUE...

Each expected scalar must be present with exactly that step, and a value equal to VALUE
rounded to float32 (TensorBoard stores simple_value as a float). The file must hold no
scalar that was not expected. Exit status: 0 when all match, 1 on a mismatch, 77 when the
tensorboard package is not installed (the test that runs this then skips).
"""
import struct
import sys


def main():
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except Exception as e:  # absent, or present but unusable with this Python
        print(f"tensorboard cannot be imported: {e}", file=sys.stderr)
        return 77

    folder, specs = sys.argv[1], sys.argv[2:]
    expected = {}
    for spec in specs:
        tag, step, value = spec.rsplit(":", 2)
        as_f32 = struct.unpack("<f", struct.pack("<f", float(value)))[0]
        expected.setdefault(tag, []).append((int(step), as_f32))

    acc = event_accumulator.EventAccumulator(folder, size_guidance={"scalars": 0})
    acc.Reload()
    found = acc.Tags().get("scalars", [])
    ok = True
    if sorted(found) != sorted(expected):
        print(f"tags: got {sorted(found)}, expected {sorted(expected)}", file=sys.stderr)
        ok = False
    for tag, want in expected.items():
        if tag not in found:
            continue
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        if got != want:
            print(f"{tag}: got {got}, expected {want}", file=sys.stderr)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
