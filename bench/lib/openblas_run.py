#!/usr/bin/python3
"""Run one Python bench script and report which OpenBLAS kernel really ran in that process.

  /usr/bin/python3 bench/lib/openblas_run.py REPORT.json SCRIPT [ARGS...]

SCRIPT runs as __main__ in this same process, with sys.argv = [SCRIPT, ARGS...] (its stdout, timings and peak RSS
are its own; nothing is added to its stdout). Afterwards, even when it fails, REPORT.json receives what was loaded:
the OpenBLAS library mapped into the process, openblas_get_config() (version, build), openblas_get_corename() (the
kernel that ran), openblas_get_num_threads(), and the OPENBLAS_* / OMP_* variables the process saw. The environment
(OPENBLAS_CORETYPE=<kernel> or unset) is set by bench/lib/openblas.mjs; the script itself is not changed.
"""
import ctypes
import json
import os
import runpy
import sys


def mapped_libraries():
    libs = set()
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[-1].startswith('/'):
                    base = os.path.basename(parts[-1]).lower()
                    if 'blas' in base or 'lapack' in base or 'mkl' in base:
                        libs.add(parts[-1])
    except OSError:
        pass
    return sorted(libs)


def openblas_report():
    libs = mapped_libraries()
    report = {'libraries': libs, 'loaded': False,
              'env': {k: v for k, v in os.environ.items() if k.startswith('OPENBLAS_') or k.startswith('OMP_')}}
    # The library already mapped into the process (dlopen of a loaded path returns that same instance).
    for path in sorted(libs, key=lambda p: 'openblas' not in os.path.basename(p).lower()):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_num_threads.restype = ctypes.c_int
            report.update(loaded=True, library=path, corename=lib.openblas_get_corename().decode(),
                          config=lib.openblas_get_config().decode(), threads=lib.openblas_get_num_threads())
            break
        except (OSError, AttributeError):
            continue
    return report


def main():
    report_path, script = sys.argv[1], os.path.abspath(sys.argv[2])
    sys.argv = [script] + sys.argv[3:]
    sys.path[0] = os.path.dirname(script)
    try:
        runpy.run_path(script, run_name='__main__')
    finally:
        with open(report_path, 'w') as f:
            json.dump(openblas_report(), f)


if __name__ == '__main__':
    main()
