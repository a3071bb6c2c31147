"""fleetbox code kernel: a small Jupyter-like Python kernel over plain pipes.

Started as ``python -u -I kernel.py`` (or ``python -u -I -c <source>``) with
stdin = command channel, stdout = event channel, stderr = fatal errors.

Commands (one JSON object per line on the command channel):
  {"type": "execute", "code": "...", "env_vars": {"K": "V"} | null}
  {"type": "configure", "env": {"K": "V"}, "cwd": "/path"}

Events (one JSON object per line on the event channel):
  {"type": "ready", "pid": N}                  once, after start-up
  {"type": "configured"[, "error": "..."]}     reply to configure
  E2B /execute lines for an execute command: number_of_executions, stdout,
  stderr, result, error, and finally end_of_execution.
  {"type": "fatal", "message": "..."}          before the kernel dies of an internal error

Only the Python standard library is used; Python 3.9+.
"""

import __future__
import ast
import atexit
import base64
import builtins
import codecs
import datetime
import io
import json
import linecache
import os
import select
import signal
import sys
import threading
import time
import traceback
import types

try:
    import ctypes

    _LIBC = ctypes.CDLL(None)
except Exception:  # pragma: no cover - no ctypes or no libc handle
    _LIBC = None

_G = globals()  # identifies kernel frames (see _on_sigint)

FLUSH_DELAY = 0.005  # stream text is emitted at most this long after it was written
FLUSH_SIZE = 1 << 16  # ... or as soon as this many characters are pending
DRAIN_EVERY = 0.0002  # Python-level writes first pick up fd output at most this often
READ_SIZE = 1 << 16
CO_COROUTINE = 0x80

_MIME_KEYS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}
_OBJECT_KEYS = ("json", "data", "chart")  # keys whose values are JSON values, not strings
_BINARY_MIMES = ("image/png", "image/jpeg", "application/pdf")
_REPR_METHODS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_javascript_", "application/javascript"),
    ("_repr_pdf_", "application/pdf"),
)

_FUTURE_MASK = 0
for _name in __future__.all_feature_names:
    _FUTURE_MASK |= getattr(__future__, _name).compiler_flag

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_strict = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode

# Execution state. Touched by the main thread; read by the SIGINT handler.
_executing = False  # an execute command is being processed
_in_user = False  # user code (or formatting of its result) may be running
_pending_interrupt = False  # SIGINT arrived while kernel code ran; raise it soon
_MAIN = threading.get_ident()
_in_child = False  # set after os.fork() in the child

_chan = None  # Channel
_pipes = None  # Pipes
_evt_fd = 1
_err_fd = 2
_KERNEL_MODULE = sys.modules[__name__]  # keeps _G alive once __main__ is the user's module


def _now_iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(
        timespec="microseconds"
    )


def _line(ev, raw=None):
    """Serialize one event as an NDJSON line (bytes). raw maps keys to JSON text."""
    s = _encode(ev)
    if raw:
        s = s[:-1] + "".join(',"%s":%s' % kv for kv in raw.items()) + "}"
    try:
        b = s.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: backslashreplace yields \udXXX, a valid JSON escape.
        b = s.encode("utf-8", "backslashreplace")
    return b + b"\n"


class Channel:
    """The event channel. Buffers stream text and writes whole NDJSON lines.

    All writes happen under self.lock, so lines never interleave, and events are
    only written while an execution is active (output of background threads or
    processes between executions is dropped). The locks are reentrant because the
    garbage collector may run a user's __del__, which may print, at any allocation.
    """

    def __init__(self, fd, wake_fd):
        self.fd = fd
        self.wake_fd = wake_fd
        self.lock = threading.RLock()
        self.active = False
        self.pending = []  # [name, [chunks], timestamp]
        self.size = 0
        self.first = 0.0  # monotonic time of the oldest pending text

    def _write(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except BrokenPipeError:
            os._exit(0)  # the worker went away

    def _take(self):
        pending, self.pending, self.size = self.pending, [], 0
        return b"".join(
            _line({"type": name, "text": "".join(chunks), "timestamp": _now_iso(ts)})
            for name, chunks, ts in pending
        )

    def stream(self, name, text):
        if not text:
            return
        wake = False
        with self.lock:
            if not self.active:
                return
            p = self.pending
            if p and p[-1][0] == name:
                p[-1][1].append(text)
            else:
                p.append([name, [text], time.time()])
            if not self.size:
                self.first = time.monotonic()
                wake = True
            self.size += len(text)
            if self.size >= FLUSH_SIZE:
                self._write(self._take())
                wake = False
        if wake:
            try:
                os.write(self.wake_fd, b"\0")
            except OSError:
                pass  # pipe full: the I/O thread is awake anyway

    def event(self, ev, raw=None, force=False):
        """Write pending stream text, then the event (if active, or if force)."""
        data = _line(ev, raw)
        with self.lock:
            if self.active or force:
                self._write(self._take() + data)

    def flush(self):
        with self.lock:
            if self.pending:
                self._write(self._take())

    def flush_due(self):
        with self.lock:
            if self.pending and time.monotonic() - self.first >= FLUSH_DELAY:
                self._write(self._take())

    def timeout(self):
        if not self.size:
            return None
        return max(0.0, self.first + FLUSH_DELAY - time.monotonic())

    def begin(self, n):
        with self.lock:
            self.pending = []
            self.size = 0
            self.active = True
            self._write(_line({"type": "number_of_executions", "execution_count": n}))

    def end(self):
        with self.lock:
            self._write(self._take() + _line({"type": "end_of_execution"}))
            self.active = False


class Pipes:
    """Reads what is written to fd 1 and fd 2 (subprocesses, C code) into the channel."""

    def __init__(self, chan, out_fd, err_fd):
        self.chan = chan
        self.lock = threading.RLock()
        self.last = 0.0
        self.fds = {
            out_fd: ("stdout", codecs.getincrementaldecoder("utf-8")("replace")),
            err_fd: ("stderr", codecs.getincrementaldecoder("utf-8")("replace")),
        }

    def _read(self, fd, limit=64):
        name, dec = self.fds[fd]
        for _ in range(limit):
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                return
            self.chan.stream(name, dec.decode(data))
            if len(data) < READ_SIZE:
                return

    def drain(self):
        """Move every byte already written to fd 1 / fd 2 into the channel."""
        with self.lock:
            self.last = time.monotonic()
            for fd in self.fds:
                self._read(fd)

    def loop(self, wake_fd):
        """I/O thread: read fd output as it comes, and flush stream text when due."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        poller = select.poll()
        for fd in list(self.fds) + [wake_fd]:
            poller.register(fd, select.POLLIN)
        try:
            while True:
                t = self.chan.timeout()
                ready = poller.poll(None if t is None else t * 1000.0)
                for fd, _ in ready:
                    if fd == wake_fd:
                        try:
                            os.read(wake_fd, 4096)
                        except BlockingIOError:
                            pass
                    else:
                        with self.lock:
                            self._read(fd)
                self.chan.flush_due()
        except BaseException:
            _fatal("I/O thread: " + traceback.format_exc())


def _check_interrupt():
    """Raise a SIGINT that arrived while kernel code ran on behalf of user code."""
    global _pending_interrupt
    if _pending_interrupt and _in_user and threading.get_ident() == _MAIN:
        _pending_interrupt = False
        raise KeyboardInterrupt


class _BinaryOut(io.RawIOBase):
    def __init__(self, text):
        self._text = text
        self._dec = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self):
        return True

    def write(self, b):
        n = len(b)
        self._text.write(self._dec.decode(bytes(b)))
        return n

    def flush(self):
        self._text.flush()

    def fileno(self):
        return self._text.fileno()


class OutStream(io.TextIOBase):
    """sys.stdout / sys.stderr: text goes to the event channel as stream events."""

    encoding = "utf-8"
    errors = "strict"
    line_buffering = False
    mode = "w"

    def __init__(self, name, fd):
        super().__init__()
        self._kind = name
        self._fd = fd
        self.buffer = _BinaryOut(self)

    @property
    def name(self):
        return "<%s>" % self._kind

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._fd

    def close(self):
        pass

    # Helpers that user code calls (write, flush, display) end with the interrupt
    # check and do nothing after it, so that a deferred SIGINT is never lost.
    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        n = len(s)
        if _in_child:
            os.write(self._fd, s.encode("utf-8", "replace"))
            return n
        if time.monotonic() - _pipes.last >= DRAIN_EVERY:
            _pipes.drain()  # fd output written before this text goes first
        _chan.stream(self._kind, s)
        if _pending_interrupt:
            _check_interrupt()
        return n

    def writelines(self, lines):
        for s in lines:
            self.write(s)

    def flush(self):
        if _in_child:
            return
        _pipes.drain()
        _chan.flush()
        _check_interrupt()


def _on_sigint(signum, frame):
    """SIGINT: KeyboardInterrupt in user code; ignored while idle.

    Kernel frames (other than the few in _RAISE_CODES) are never interrupted:
    the interrupt is remembered and raised when control is back in user code.
    """
    global _pending_interrupt
    if not _executing:
        return
    if (
        _in_user
        and frame is not None
        and (frame.f_globals is not _G or frame.f_code in _RAISE_CODES)
    ):
        _pending_interrupt = False
        raise KeyboardInterrupt
    _pending_interrupt = True


_loop = None


def _run_coro(coro):
    global _loop
    import asyncio

    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    task = _loop.create_task(coro)
    try:
        return _loop.run_until_complete(task)
    except BaseException:
        task.cancel()
        raise


def _run_code(code, ns):
    if _pending_interrupt:
        _check_interrupt()
    if code.co_flags & CO_COROUTINE:
        return _run_coro(eval(code, ns))
    return eval(code, ns)


_RAISE_CODES = frozenset((_run_code.__code__, _run_coro.__code__, _check_interrupt.__code__))


def _get_method(obj, name):
    if isinstance(obj, type):
        return None
    try:
        if getattr(obj, "_ipython_canary_method_should_not_exist_", None) is not None:
            return None  # __getattr__ answers anything
        m = getattr(obj, name, None)
    except Exception:
        return None
    return m if callable(m) else None


def _format_error(where, exc):
    sys.stderr.write("%s: %s: %s\n" % (where, type(exc).__name__, exc))


def _format(obj):
    """Return the MIME bundle of obj, like IPython's display formatter."""
    data = {}
    m = _get_method(obj, "_repr_mimebundle_")
    if m is not None:
        try:
            r = m(include=None, exclude=None)
            if isinstance(r, tuple):
                r = r[0]
            if isinstance(r, dict):
                data.update(r)
        except Exception as e:
            _format_error("_repr_mimebundle_", e)
    for name, mime in _REPR_METHODS:
        if mime in data:
            continue
        m = _get_method(obj, name)
        if m is None:
            continue
        try:
            r = m()
        except Exception as e:
            _format_error(name, e)
            continue
        if isinstance(r, tuple):
            r = r[0]
        if r is not None:
            data[mime] = r
    if "image/png" not in data and type(obj).__module__ == "matplotlib.figure":
        try:
            buf = io.BytesIO()
            obj.savefig(buf, format="png", bbox_inches="tight")
            data["image/png"] = buf.getvalue()
        except Exception as e:
            _format_error("savefig", e)
    if "text/plain" not in data:
        data["text/plain"] = repr(obj)
    return data


def _json_text(value):
    """JSON text of value, or None if it is not JSON-serializable."""
    try:
        if isinstance(value, (bytes, bytearray)):
            value = base64.b64encode(value).decode("ascii")
        return _encode_strict(value)
    except (TypeError, ValueError, RecursionError):
        return None


def _result_event(bundle, obj, main):
    ev = {"type": "result"}
    raw = {}
    extra = []
    for mime, val in bundle.items():
        key = _MIME_KEYS.get(mime)
        if key is None:
            s = _json_text(val)
            if s is not None:
                extra.append(_encode(str(mime)) + ":" + s)
            continue
        if key in _OBJECT_KEYS:
            if isinstance(val, str):
                try:
                    val = json.loads(val)
                except ValueError:
                    continue
            s = _json_text(val)
            if s is not None:
                raw[key] = s
            continue
        if isinstance(val, (bytes, bytearray)):
            if mime in _BINARY_MIMES:
                val = base64.b64encode(val).decode("ascii")
            else:
                val = bytes(val).decode("utf-8", "replace")
        elif not isinstance(val, str):
            val = str(val)
        if key == "text" and len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        ev[key] = val
    if "json" not in raw and isinstance(obj, (dict, list)):
        s = _json_text(obj)
        if s is not None:
            raw["json"] = s
    ev["is_main_result"] = main
    raw["extra"] = "{" + ",".join(extra) + "}"
    return ev, raw


def display(*objs, raw=False, **kwargs):
    """Show objects as results (is_main_result false), like IPython's display()."""
    for obj in objs:
        bundle = obj if raw and isinstance(obj, dict) else _format(obj)
        ev, rawj = _result_event(bundle, obj, False)
        if not _in_child:
            _pipes.drain()
            _chan.event(ev, rawj)
    _check_interrupt()


def _clean_traceback(tb):
    """Hide the kernel's frames: start at the first frame of a cell (if any)."""
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for i, t in enumerate(frames):
        if t.tb_frame.f_code.co_filename.startswith("<cell In["):
            frames = frames[i:]
            break
    frames = [t for t in frames if t.tb_frame.f_globals is not _G]
    for a, b in zip(frames, frames[1:]):
        a.tb_next = b
    if not frames:
        return None
    frames[-1].tb_next = None
    return frames[0]


def _emit_error(exc):
    name = type(exc).__name__
    try:
        value = str(exc)
    except BaseException:
        value = "<unprintable %s object>" % name
    tb = _clean_traceback(exc.__traceback__)
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        text = "%s: %s\n" % (name, value)
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
    _pipes.drain()
    _chan.event({"type": "error", "name": name, "value": value, "traceback": text})


def _ends_with_semicolon(lines, node):
    line = lines[node.end_lineno - 1].encode("utf-8")[node.end_col_offset:]
    tail = line.decode("utf-8", "replace") + "".join(lines[node.end_lineno:])
    return tail.lstrip().startswith(";")


class Cells:
    """Compiles and runs cells in one persistent namespace."""

    def __init__(self, ns):
        self.ns = ns
        self.count = 0
        self.flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

    def compile(self, src, filename):
        """Return (code objects to exec, code of the last expression or None)."""
        tree = compile(src, filename, "exec", self.flags | ast.PyCF_ONLY_AST, True)
        body = tree.body
        last = None
        if body and isinstance(body[-1], ast.Expr):
            lines = linecache.cache[filename][2]
            if not _ends_with_semicolon(lines, body[-1]):
                last = ast.Expression(body.pop().value)
        codes = []
        if body:
            codes.append(compile(ast.Module(body, []), filename, "exec", self.flags, True))
        if last is not None:
            last = compile(last, filename, "eval", self.flags, True)
        for c in codes + [last]:
            if c is not None:
                self.flags |= c.co_flags & _FUTURE_MASK
        return codes, last

    def run(self, src):
        """Run one cell; report its result or error on the channel."""
        global _in_user
        filename = "<cell In[%d]>" % self.count
        lines = [s + "\n" for s in src.split("\n")]
        if src.endswith("\n"):
            lines.pop()
        linecache.cache[filename] = (len(src), None, lines, filename)
        try:
            codes, last = self.compile(src, filename)
        except Exception as e:  # SyntaxError, ValueError (null bytes), ...
            _emit_error(e)
            return
        result = None
        try:
            _in_user = True
            for code in codes:
                _run_code(code, self.ns)
            if last is not None:
                value = _run_code(last, self.ns)
                if value is not None:
                    self.ns["_"] = value
                    result = _result_event(_format(value), value, True)
            _in_user = False
        except BaseException as e:
            _in_user = False
            _emit_error(e)
            return
        if result is not None:
            _pipes.drain()
            _chan.event(*result)


def _flush_all():
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if isinstance(s, OutStream) or s is None:
            continue
        try:
            s.flush()
        except Exception:
            pass
    if _LIBC is not None:
        try:
            _LIBC.fflush(None)
        except Exception:
            pass


def _execute(cells, msg):
    global _executing, _in_user, _pending_interrupt
    cells.count += 1
    _pending_interrupt = False
    _executing = True
    _chan.begin(cells.count)
    saved = {}
    try:
        env = msg.get("env_vars") or {}
        for k, v in env.items():
            saved[k] = os.environ.get(k)
            os.environ[k] = v if isinstance(v, str) else str(v)
        cells.run(msg.get("code") or "")
    except BaseException as e:  # bad env var names, kernel bugs
        _in_user = False
        _emit_error(e)
    finally:
        for k, v in saved.items():
            try:
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            except Exception:
                pass
        _in_user = False
        _flush_all()
        _pipes.drain()
        _chan.end()
        _executing = False
        _pending_interrupt = False
        if signal.getsignal(signal.SIGINT) is not _on_sigint:
            signal.signal(signal.SIGINT, _on_sigint)


def _configure(msg):
    reply = {"type": "configured"}
    try:
        for k, v in (msg.get("env") or {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        cwd = msg.get("cwd")
        if cwd:
            os.chdir(cwd)
    except Exception as e:
        reply["error"] = "%s: %s" % (type(e).__name__, e)
    _chan.event(reply, force=True)


def _after_fork_in_child():
    """A forked child must not write to (or hold open) the kernel's channels."""
    global _in_child
    _in_child = True
    for fd in _PRIVATE_FDS:
        try:
            os.close(fd)
        except OSError:
            pass


_PRIVATE_FDS = []


def _setup_fds():
    """Keep private copies of the channels; point fds 0/1/2 at /dev/null and pipes."""
    global _evt_fd, _err_fd
    cmd_fd = os.dup(0)
    evt_fd = _evt_fd = os.dup(1)
    _err_fd = os.dup(2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    readers = []
    for fd in (1, 2):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        os.set_blocking(r, False)
        readers.append(r)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    _PRIVATE_FDS.extend([cmd_fd, evt_fd, _err_fd, readers[0], readers[1], wake_r, wake_w])
    return cmd_fd, evt_fd, readers[0], readers[1], wake_r, wake_w


def _setup_python():
    """Make the user's interpreter look like an interactive one (despite -I)."""
    sys.path.insert(0, "")
    for p in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if p:
            sys.path.insert(1, p)
    try:
        import site

        user_site = site.getusersitepackages()
        if os.path.isdir(user_site) and user_site not in sys.path:
            site.addsitedir(user_site)
    except Exception:
        pass
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    builtins.display = display
    sys.argv = [""]
    return main.__dict__


def _fatal(message):
    try:
        os.write(_err_fd, ("fleetbox kernel: fatal: %s\n" % message).encode("utf-8", "replace"))
    except Exception:
        pass
    try:
        if _chan is not None:
            _chan.event({"type": "fatal", "message": message}, force=True)
        else:
            os.write(_evt_fd, _line({"type": "fatal", "message": message}))
    except Exception:
        pass
    os._exit(70)


def main():
    global _chan, _pipes
    signal.signal(signal.SIGINT, _on_sigint)
    cmd_fd, evt_fd, out_r, err_r, wake_r, wake_w = _setup_fds()
    _chan = Channel(evt_fd, wake_w)
    _pipes = Pipes(_chan, out_r, err_r)
    sys.stdout = OutStream("stdout", 1)
    sys.stderr = OutStream("stderr", 2)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    cells = Cells(_setup_python())
    threading.Thread(target=_pipes.loop, args=(wake_r,), name="fleetbox-io", daemon=True).start()
    commands = os.fdopen(cmd_fd, "rb", buffering=1 << 16)
    _chan.event({"type": "ready", "pid": os.getpid()}, force=True)
    while True:
        line = commands.readline()
        if not line:
            break
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            kind = msg.get("type")
        except (ValueError, AttributeError) as e:
            _fatal("bad command: %s" % e)
        if kind == "execute":
            _execute(cells, msg)
        elif kind == "configure":
            _configure(msg)
        else:
            _fatal("unknown command type %r" % (kind,))
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    os._exit(0)


def zygote(sock_fd):
    """Fork server: with the kernel imported once, fork a ready kernel per request.

    Requests arrive on a SOCK_SEQPACKET socket, one JSON message each, carrying three file descriptors
    (the new kernel's stdin, stdout and stderr): {"cwd": dir, "env": {...}, "pgid": n} where pgid 0 makes
    the kernel lead a new process group and n joins group n. The answer is {"pid": n} or {"error": msg}.
    The zygote exits when the socket closes (its worker is gone); its children are reaped by the kernel
    (SIGCHLD ignored).
    """
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=sock_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)
        try:
            req = json.loads(msg)
            if len(fds) != 3:
                raise ValueError("want 3 file descriptors, got %d" % len(fds))
            pid = os.fork()
        except Exception as e:  # noqa: BLE001 - reported to the worker
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"error": str(e)}).encode())
            continue
        if pid == 0:
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                os.setpgid(0, req.get("pgid", 0))
                for i, fd in enumerate(fds):
                    os.dup2(fd, i)
                for fd in fds:
                    if fd > 2:
                        os.close(fd)
                os.chdir(req["cwd"])
                os.environ.clear()
                os.environ.update(req["env"])
                run()
            finally:
                os._exit(70)
        try:
            # Also from the parent, so the group is set before the worker looks (the usual race).
            os.setpgid(pid, req.get("pgid", 0))
        except OSError:
            pass
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())


def run():
    """Entry point when imported as a module (so the interpreter can cache its bytecode)."""
    try:
        main()
    except BaseException:
        _fatal(traceback.format_exc())


if __name__ == "__main__":
    run()
