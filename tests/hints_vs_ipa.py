#!/usr/bin/env python3
"""Evaluate root-device hint cases with ironic-python-agent's own matcher.

Reads a JSON list of {"devices": [...], "hints": {...}} from the file named on the command
line and prints a JSON list with, for each case, {"matches": [device indices]} or
{"error": "ExceptionType: message"} when IPA raises. When IPA cannot be imported it prints
{"skip": reason} instead, so that the comparison can be skipped cleanly.

Used by tests/hints_vs_ipa.rs; needs `pip install ironic-python-agent`.
"""

import json
import logging
import sys
import warnings


def main():
    try:
        from ironic_python_agent import device_hints
    except Exception as exc:  # ImportError, or a dependency that fails to import
        json.dump({"skip": f"ironic_python_agent is not importable: {exc!r}"}, sys.stdout)
        return 0

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")

    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)

    results = []
    for case in cases:
        devices = case["devices"]
        try:
            found = list(device_hints.find_devices_by_hints(devices, case["hints"]))
        except Exception as exc:  # IPA fails the deploy on any of these
            results.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        indices = [next(i for i, d in enumerate(devices) if d is dev) for dev in found]
        results.append({"matches": indices})

    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
