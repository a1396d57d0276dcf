# -*- coding: utf-8 -*-
# Copyright: contributors to pandorafms.server
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A streaming guard over a SQL dump: only what a single-database dump holds gets through.

A restore loads the dump of an archive that anybody able to write into the
backup directory could have made.  :class:`DumpGuard` reads the dump as a
stream (memory stays bounded whatever its size) with the same lexical rules as
the server and the ``mariadb`` client (quotes, backslash escapes, comments,
executable ``/*! ... */`` comments, ``DELIMITER``) and refuses, naming the
line and the statement:

* a statement that switches databases (``USE``) or names an object of another
  database (``other_db.table`` in a table statement, a system schema or a
  known database anywhere);
* a statement a single-database dump never holds: accounts and privileges
  (``GRANT``, ``CREATE USER``, ``SET PASSWORD`` ...), databases
  (``CREATE/DROP DATABASE``), plugins (``INSTALL PLUGIN``, ``SONAME``), files
  (``LOAD DATA``, ``LOAD_FILE``, ``INTO OUTFILE``), server administration
  (``SET GLOBAL``, ``FLUSH``, ``KILL``, ``SHUTDOWN`` ...), dynamic SQL
  (``PREPARE``/``EXECUTE``) and any statement outside the short list that the
  dump tools write (``SET``, ``CREATE``/``DROP``/``ALTER`` of tables, views,
  triggers, routines, events, ``LOCK``/``UNLOCK TABLES``, ``INSERT``);
* data that is not literals: an ``INSERT`` must be ``INSERT INTO `t` [(cols)]
  VALUES`` followed by numbers, quoted strings, ``NULL``, hex and bit
  literals only;
* a client command (a backslash outside a string, a ``DELIMITER`` other than
  ``;`` and ``;;``).

With ``rewrite=True`` :meth:`feed` also returns the bytes to hand to the
client, with every ``DEFINER=`user`@`host``` clause replaced by
``DEFINER=CURRENT_USER`` (the temporary loading account cannot create objects
for anybody else); nothing is returned before the statement it belongs to was
checked.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.pandorafms.server.plugins.module_utils._errors import PreconditionFailed

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
MAX_STATEMENT = 16 * 1024 * 1024   # a CREATE TABLE or a routine; rows stream without a bound
CARRY = 64
SANDBOX = b"/*M!999999\\- enable the sandbox mode */"

_CODE_SPECIAL = re.compile(rb"['\"`\\#;/*\-\n]")
# One C-speed pass over many rows of literals: numbers, strings, NULL, hex and bit literals.
_DATA_RUN = re.compile(
    rb"(?:[\s(),+]+|[0-9.]+(?![xX'0-9.])|-(?!-)|'[^'\\]*(?:\\.[^'\\]*)*'|NULL\b|0x[0-9A-Fa-f]+\b|[xX]'[0-9A-Fa-f]*'|"
    rb"[bB]'[01]*'|_[a-z0-9]+\b|[eE](?=[-+0-9])|\b(?:TRUE|FALSE|true|false)\b)*")
_DATA_TAIL = re.compile(rb"(?:" + _DATA_RUN.pattern[3:-2] + rb")*(?<=[\s(),])")
_STRING_BODY = re.compile(rb"[^'\\]*(?:\\.[^'\\]*)*")
_DQ_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*')
_BT_BODY = re.compile(rb"[^`]*")
_INSERT_HEAD = re.compile(
    rb"\s*(?:INSERT|REPLACE)\s+(?:(?:IGNORE|DELAYED|LOW_PRIORITY|HIGH_PRIORITY)\s+)?INTO\s+`((?:[^`]|``)+)`\s*"
    rb"(?:\(\s*`(?:[^`]|``)+`(?:\s*,\s*`(?:[^`]|``)+`)*\s*\)\s*)?VALUES\s*\Z", re.I)
_VALUES = re.compile(rb"\bVALUES\b", re.I)
_IDENT = re.compile(rb"`(?:[^`]|``)*`")
_QUALIFIED = re.compile(rb"(`(?:[^`]|``)+`|\b[A-Za-z_$][A-Za-z0-9_$]*)\s*\.\s*(?=[`A-Za-z_$])")
_DEFINER = re.compile(
    rb"DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'|[A-Za-z0-9_$.-]+)\s*@\s*"
    rb"(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'|[A-Za-z0-9_$.%:-]+)", re.I)

_OBJECTS = r"(?:TABLE|VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|SEQUENCE)"
_ALLOWED = [re.compile(p, re.I) for p in (
    r"SET\b",
    r"DROP\s+(?:TEMPORARY\s+)?%s\b" % _OBJECTS,
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+|AGGREGATE\s+)?"
    r"(?:ALGORITHM\s*=\s*\w+\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?%s\b" % _OBJECTS,
    r"ALTER\s+(?:ONLINE\s+|IGNORE\s+)*(?:TABLE|VIEW|EVENT|SEQUENCE)\b",
    r"(?:LOCK|UNLOCK)\s+TABLES?\b",
    r"(?:START\s+TRANSACTION|BEGIN|COMMIT)\b",
)]
_FORBIDDEN = [(re.compile(p, re.I), what) for p, what in (
    (r"\bGRANT\b|\bREVOKE\b", "a privilege statement"),
    (r"\b(?:CREATE|DROP|ALTER|RENAME)\s+(?:OR\s+REPLACE\s+)?(?:USER|ROLE)\b", "an account statement"),
    (r"\bSET\s+(?:PASSWORD|(?:DEFAULT\s+)?ROLE)\b|\bIDENTIFIED\b", "an account statement"),
    (r"\b(?:CREATE|DROP|ALTER)\s+(?:OR\s+REPLACE\s+)?(?:DATABASE|SCHEMA|SERVER|TABLESPACE|LOGFILE)\b",
     "a database statement"),
    (r"\bUSE\s+(?!INDEX\b|KEY\b)[`\w]", "a database switch (USE)"),
    (r"\b(?:UN)?INSTALL\b|\bSONAME\b", "a plugin statement"),
    (r"\bLOAD\s+(?:DATA|XML|INDEX)\b|\bLOAD_FILE\b|\bINTO\s+(?:OUTFILE|DUMPFILE)\b", "a file access"),
    (r"\bGLOBAL\b|@@GLOBAL\b|\bsql_log_bin\b|\bNO_BACKSLASH_ESCAPES\b", "a server setting"),
    (r"\b(?:FLUSH|KILL|SHUTDOWN|PURGE|RESET|BINLOG)\b|\bCHANGE\s+(?:MASTER|REPLICATION)\b|"
     r"\b(?:START|STOP)\s+(?:SLAVE|REPLICA|ALL\s+SLAVES)\b", "a server administration statement"),
    (r"\bPREPARE\b|\bEXECUTE\b|\bDEALLOCATE\b", "dynamic SQL (PREPARE/EXECUTE)"),
)]
_BODY_OBJECT = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?(?:DEFINER\s*=\s*\S+\s+)?"
                          r"(?:SQL\s+SECURITY\s+\w+\s+)?(?:AGGREGATE\s+)?(?:VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT)\b",
                          re.I)

HEAD, DATA = 0, 1


class UnsafeDump(PreconditionFailed):
    """The dump holds something a single-database dump never holds."""


class DumpGuard(object):
    """``guard.feed(chunk)`` for every chunk, then ``guard.close()``; raises :class:`UnsafeDump`."""

    def __init__(self, member="the dump", schemas=(), rewrite=False):
        self.member = member
        self.schemas = set(s.lower() for s in SYSTEM_SCHEMAS)
        self.schemas.update(s.lower() for s in schemas if s)
        self.rewrite = rewrite
        self.line = 1
        self.statements = 0
        self._carry = b""
        self._mode = None        # None (code), b"'", b'"', b"`", b"*" (comment), b"-" (line comment)
        self._phase = HEAD
        self._code = bytearray()  # the current statement's code (strings blanked), for the checks
        self._raw = bytearray()   # its raw bytes, held back until checked (rewrite mode)
        self._table = None
        self._bol = True
        self._delimiter = b";"
        self._start_line = 1
        self._out = []
        self.qualifiers = {}
        self._strings_tail = b""
        self._no_escapes = False

    # -- public ---------------------------------------------------------------
    def feed(self, chunk):
        buf = self._carry + chunk if self._carry else chunk
        used = self._scan(buf, final=False)
        self._carry = buf[used:]
        if len(self._carry) > MAX_STATEMENT:
            self._refuse("holds a value longer than %d MiB" % (MAX_STATEMENT >> 20))
        return self._take()

    def close(self):
        if self._carry:
            used = self._scan(self._carry, final=True)
            if used < len(self._carry):
                self._refuse("ends with an incomplete token")
            self._carry = b""
        if self._mode in (b"'", b'"', b"`"):
            self._refuse("ends inside a quoted string or name")
        if self._mode == b"*":
            self._refuse("ends inside a comment")
        if self._phase == DATA or self._code.strip():
            self._refuse("ends inside a statement")
        if self._raw:
            self._emit_raw()
        return self._take()

    # -- internals --------------------------------------------------------------
    def _take(self):
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out = []
        return data

    def _refuse(self, why, statement=None):
        head = statement if statement is not None else self._code
        text = re.sub(rb"\s+", b" ", bytes(head[:120])).strip().decode("utf-8", "replace")
        raise UnsafeDump("%s: line %d %s%s; a dump of one database never does that. The archive was refused "
                         "before anything changed" % (self.member, self._start_line, why,
                                                      (" (statement: %s...)" % text[:80]) if text else ""))

    def _pass(self, data):
        """Bytes of the current statement, consumed."""
        if not self.rewrite:
            return
        if self._phase == DATA:
            self._out.append(data)
        else:
            self._raw += data
            if len(self._raw) > MAX_STATEMENT:
                self._refuse("holds a statement longer than %d MiB" % (MAX_STATEMENT >> 20))

    def _emit_raw(self):
        data = bytes(self._raw)
        self._raw = bytearray()
        if self.rewrite:
            self._out.append(_DEFINER.sub(b"DEFINER=CURRENT_USER", data))

    def _string_text(self, data):
        """String literals of statements (not rows): one setting changes how the server reads quotes."""
        text = (self._strings_tail + data).upper()
        if b"NO_BACKSLASH_ESCAPES" in text:
            self._no_escapes = True
        self._strings_tail = text[-24:]

    def _code_add(self, data):
        if not self._code.strip() and data.strip():
            self._start_line = self.line
        self._code += data
        if len(self._code) > MAX_STATEMENT:
            self._refuse("holds a statement longer than %d MiB" % (MAX_STATEMENT >> 20))

    def _scan(self, buf, final):
        pos = 0
        end = len(buf)
        while pos < end:
            mode = self._mode
            if mode == b"'" or mode == b'"':
                body = _STRING_BODY if mode == b"'" else _DQ_BODY
                stop = body.match(buf, pos).end()
                if self._phase == HEAD:
                    self._string_text(buf[pos:stop])
                if stop < end and buf[stop:stop + 1] == b"\\":   # a backslash at the end: need more
                    stop_at = stop
                else:
                    stop_at = None
                if stop_at is not None:
                    self._consume(buf, pos, stop_at, counted=True)
                    return stop_at if not final else end
                if stop >= end:
                    self._consume(buf, pos, end, counted=True)
                    return end
                self._consume(buf, pos, stop + 1, counted=True)
                self._mode = None
                pos = stop + 1
                continue
            if mode == b"`":
                stop = _BT_BODY.match(buf, pos).end()
                if self._phase == HEAD:
                    self._code_add(buf[pos:stop])
                if stop >= end:
                    self._consume(buf, pos, end, counted=True)
                    return end
                if self._phase == HEAD:
                    self._code_add(b"`")
                self._consume(buf, pos, stop + 1, counted=True)
                self._mode = None
                pos = stop + 1
                continue
            if mode == b"*":
                stop = buf.find(b"*/", pos)
                if stop < 0:
                    keep = end - 1 if buf.endswith(b"*") and not final else end
                    self._consume(buf, pos, keep, counted=True)
                    return keep
                self._consume(buf, pos, stop + 2, counted=True)
                self._mode = None
                pos = stop + 2
                continue
            if mode == b"-":
                stop = buf.find(b"\n", pos)
                if stop < 0:
                    self._consume(buf, pos, end, counted=False)
                    return end
                self._consume(buf, pos, stop + 1, counted=True)
                self._mode = None
                self._bol = True
                pos = stop + 1
                continue
            # code
            if self._phase == DATA:
                stop = _DATA_RUN.match(buf, pos).end()
                char = buf[stop:stop + 1]
                if not final and (stop >= end or (end - stop < CARRY and char != b"'"
                                                  and not buf.startswith(self._delimiter, stop))):
                    # the chunk may end inside a token: stop after the last separator, read on later
                    tail = _DATA_TAIL.match(buf, pos)
                    cut = tail.end() if tail else pos
                    self._consume(buf, pos, cut, counted=True)
                    return cut
                if stop > pos:
                    self._consume(buf, pos, stop, counted=True)
                    pos = stop
                    continue
                if char == self._delimiter[:1] and buf.startswith(self._delimiter, pos):
                    self._consume(buf, pos, pos + len(self._delimiter), counted=True)
                    pos += len(self._delimiter)
                    self._end_statement()
                    continue
                if char == b"'":
                    self._consume(buf, pos, pos + 1, counted=True)
                    self._mode = b"'"
                    pos += 1
                    continue
                self._refuse("holds something else than literals in the rows of INSERT INTO `%s`: %r" % (
                    self._table, buf[pos:pos + 24].decode("utf-8", "replace")))
            if self._bol:
                nl = buf.find(b"\n", pos)
                if nl < 0 and not final and end - pos < 32:
                    return pos
                line = buf[pos:nl if nl >= 0 else end]
                word = line.lstrip(b" \t")[:10].lower()
                if word.startswith(b"delimiter") and (len(word) == 9 or word[9:10] in b" \t"):
                    if nl < 0 and not final:
                        return pos
                    self._delimiter_command(line)
                    stop = nl + 1 if nl >= 0 else end
                    self._consume(buf, pos, stop, counted=True)
                    if self.rewrite:
                        self._out.append(b"")
                    pos = stop
                    continue
                self._bol = False
            match = _CODE_SPECIAL.search(buf, pos)
            stop = match.start() if match else end
            if stop > pos:
                plain = buf[pos:stop]
                if self._phase == HEAD:
                    values_end = self._values_end(plain)
                    if values_end is not None:
                        pos = self._enter_data(buf, pos, pos + values_end)
                        continue
                self._code_add(plain)
                self._consume(buf, pos, stop, counted=False)
                pos = stop
                if not match:
                    return end
            char = buf[pos:pos + 1]
            nxt = buf[pos + 1:pos + 2]
            if not nxt and not final and char in b"/-*;":
                return pos
            if char == b"\n":
                self._code_add(b"\n")
                self._consume(buf, pos, pos + 1, counted=True)
                self._bol = True
                pos += 1
            elif char == b";":
                if buf.startswith(self._delimiter, pos):
                    self._consume(buf, pos, pos + len(self._delimiter), counted=True)
                    pos += len(self._delimiter)
                    self._end_statement()
                else:
                    if not final and end - pos < len(self._delimiter):
                        return pos
                    self._code_add(b";")
                    self._consume(buf, pos, pos + 1, counted=True)
                    pos += 1
            elif char in (b"'", b'"'):
                self._code_add(b"''")
                self._consume(buf, pos, pos + 1, counted=True)
                self._mode = char
                pos += 1
            elif char == b"`":
                self._code_add(b"`")
                self._consume(buf, pos, pos + 1, counted=True)
                self._mode = b"`"
                pos += 1
            elif char == b"\\":
                if not self._code.strip(b" ") and buf.startswith(SANDBOX[10:], pos) and self.statements == 0:
                    # mariadb-dump's first line, /*M!999999\- enable the sandbox mode */: the client's
                    # own command that forbids every other client command.  Keep it.
                    self._consume(buf, pos, pos + len(SANDBOX) - 10, counted=True)
                    self._code = bytearray()
                    pos += len(SANDBOX) - 10
                    continue
                if not final and end - pos < len(SANDBOX):
                    return pos
                self._refuse("holds a client command (a backslash outside a string)")
            elif char == b"#":
                self._consume(buf, pos, pos + 1, counted=True)
                self._mode = b"-"
                pos += 1
            elif char == b"-":
                if nxt == b"-" and buf[pos + 2:pos + 3] in (b" ", b"\t", b"\n", b"\r") or (
                        nxt == b"-" and pos + 2 >= end and final):
                    self._consume(buf, pos, pos + 2, counted=True)
                    self._mode = b"-"
                    pos += 2
                elif nxt == b"-" and pos + 2 >= end:
                    return pos
                else:
                    self._code_add(b"-")
                    self._consume(buf, pos, pos + 1, counted=True)
                    pos += 1
            elif char == b"/":
                if nxt == b"*":
                    rest = buf[pos + 2:pos + 4]
                    if len(rest) < 2 and not final:
                        return pos
                    if rest[:1] == b"!" or rest == b"M!":
                        skip = 3 if rest[:1] == b"!" else 4
                        # an executable comment: its version number, then code
                        digits = re.match(rb"[0-9]*", buf[pos + skip:pos + skip + 8]).end()
                        if pos + skip + digits >= end and not final:
                            return pos
                        self._code_add(b" ")
                        self._consume(buf, pos, pos + skip + digits, counted=True)
                        pos += skip + digits
                    else:
                        self._consume(buf, pos, pos + 2, counted=True)
                        self._mode = b"*"
                        pos += 2
                else:
                    self._code_add(b"/")
                    self._consume(buf, pos, pos + 1, counted=True)
                    pos += 1
            elif char == b"*":
                if nxt == b"/":
                    self._code_add(b" ")
                    self._consume(buf, pos, pos + 2, counted=True)
                    pos += 2
                else:
                    self._code_add(b"*")
                    self._consume(buf, pos, pos + 1, counted=True)
                    pos += 1
        return end

    def _consume(self, buf, start, stop, counted):
        if stop <= start:
            return
        data = buf[start:stop]
        self.line += data.count(b"\n")
        self._pass(data)

    def _values_end(self, plain):
        """Where, in ``plain``, the keyword VALUES of an INSERT ends (it may start in the code before)."""
        start = bytes(self._code[:40]).lstrip()[:7].upper()
        if not (start.startswith(b"INSERT") or start.startswith(b"REPLACE") or (
                not start and plain.lstrip()[:7].upper().startswith((b"INSERT", b"REPLACE")))):
            return None
        before = bytes(self._code[-8:])
        match = _VALUES.search(before + plain)
        if match is None:
            return None
        return max(0, match.end() - len(before))

    def _enter_data(self, buf, pos, head_end):
        self._code_add(buf[pos:head_end])
        self._consume(buf, pos, head_end, counted=False)
        head = _INSERT_HEAD.match(bytes(self._code))
        if not head:
            self._refuse("holds an INSERT in a form the dump tools never write")
        self._table = head.group(1).replace(b"``", b"`").decode("utf-8", "replace")
        self._emit_raw()
        self._phase = DATA
        return head_end

    def _delimiter_command(self, line):
        if self._code.strip():
            self._refuse("holds a DELIMITER command inside a statement")
        parts = line.split()
        value = parts[1] if len(parts) > 1 else b""
        if value not in (b";", b";;") or len(parts) > 2:
            self._refuse("sets the delimiter to %r (the dump tools use ; and ;;)" % value.decode("utf-8", "replace"))
        self._delimiter = value
        self._bol = True

    def _end_statement(self):
        if self._phase == HEAD:
            self._check(bytes(self._code))
            self._emit_raw()
        self.statements += 1
        self._phase = HEAD
        self._table = None
        self._code = bytearray()
        self._bol = False
        self._strings_tail = b""
        self._no_escapes = False

    def _check(self, code):
        text = code.strip()
        if not text:
            return
        if self._no_escapes:
            self._refuse("holds a server setting (NO_BACKSLASH_ESCAPES changes how the server reads strings)",
                         code)
        words = _IDENT.sub(b"`x`", text).decode("utf-8", "replace")
        words = re.sub(r"\s+", " ", words).strip()
        upper = words.upper()
        if upper.startswith("INSERT") or upper.startswith("REPLACE"):
            self._refuse("holds an INSERT in a form the dump tools never write", code)
        for rule, what in _FORBIDDEN:
            if rule.search(words):
                self._refuse("holds %s" % what, code)
        if not any(rule.match(words) for rule in _ALLOWED):
            self._refuse("holds a statement the dump tools never write", code)
        is_object = _BODY_OBJECT.match(words) is not None
        for match in _QUALIFIED.finditer(text):
            raw = match.group(1)
            name = (raw[1:-1].replace(b"``", b"`") if raw.startswith(b"`") else raw).decode("utf-8", "replace")
            if not is_object or name.lower() in self.schemas:
                self._refuse("names an object of another database (%s.)" % name, code)
            if len(self.qualifiers) < 100000:
                self.qualifiers.setdefault(name.lower(), self._start_line)

    def check_qualifiers(self, names):
        """Refuse when a view, trigger or routine qualified a name with one of ``names`` (databases)."""
        for name in names:
            line = self.qualifiers.get(name.lower())
            if line is not None:
                self._start_line = line
                self._refuse("names an object of the database %s (%s.)" % (name, name), b"")
