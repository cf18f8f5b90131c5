"""What the plugin's script tests (test_examples.py, test_demo.py) share: checks
that print ok/FAIL and collect failures, running a program with a timeout, and
whether GStreamer has an element."""
import subprocess

TIMEOUT = 120
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def run(args, env=None, timeout=TIMEOUT):
    """(returncode, stdout, stderr); a timeout is returncode -1."""
    try:
        p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return -1, e.stdout or "", f"timed out after {timeout} s"


def has_element(name):
    return run(["gst-inspect-1.0", name], timeout=60)[0] == 0
