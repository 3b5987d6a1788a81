#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""check-man.py: umem's man pages render cleanly and say what the code says.

    check-man.py [--bindir DIR]   TAP lines, then "N passed, N failed"
    check-man.py --fix-example    copy Documentation/examples/libumem-example.c
                                  into the EXAMPLES of libumem.3

Checks:
  * every page: groff -man -Tutf8 -ww -z, man -l and man --warnings -l
    print nothing on stderr, lexgrog parses its NAME line;
  * umem.4 against uapi/linux/umem.h: every UMEM_* name and struct umem_*
    appears; each constant (#define with a literal, a shift or a string)
    on one line with its value; each ioctl on one line with its
    encoding, e.g. "UMEM_COPY _IOWR(0xB9, 0x10, struct umem_copy)"; each
    enumerator on one line with its number; every struct written out with
    the header's members in the header's order;
  * libumem.3 against userspace/lib/libumem.h: every function, struct and
    its members, macro and enumerator; its example is the example file;
  * umemd.8, umemctl.8, umem-vmm.1: every option of the program's --help
    (programs from --bindir, default userspace/build/bin).
The pages are rendered with groff -Tascii, no wrapping, no hyphenation.
"""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "Documentation")
UAPI = os.path.join(REPO, "uapi", "linux", "umem.h")
LIBH = os.path.join(REPO, "userspace", "lib", "libumem.h")
EXAMPLE = os.path.join(DOC, "examples", "libumem-example.c")
PAGES = ["umemd.8", "umemctl.8", "umem-vmm.1", "umem.4", "libumem.3"]
HELP_PAGES = {"umemd.8": "umemd", "umemctl.8": "umemctl", "umem-vmm.1": "umem-vmm"}
EX_BEGIN = '.\\" example: begin'
EX_END = '.\\" example: end'

npass = nfail = 0


def result(ok, desc, details=()):
    global npass, nfail
    if ok:
        npass += 1
        print(f"ok {npass + nfail} - {desc}")
    else:
        nfail += 1
        print(f"not ok {npass + nfail} - {desc}")
        for d in list(details)[:30]:
            print(f"#   {d}")


def run(cmd, env=None):
    e = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    if env:
        e.update(env)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def render(page):
    rc, out, err = run(["groff", "-man", "-Tascii", "-P-cbou", "-rLL=400n", "-rHY=0",
                        os.path.join(DOC, page)])
    return out


def norm(s):
    """Whitespace to single blanks, integer suffixes dropped (4096U -> 4096)."""
    s = re.sub(r"\b(0x[0-9A-Fa-f]+|\d+)(?:ULL|UL|LL|U|L)\b", r"\1", s)
    return " ".join(s.split())


def strip_c_comments(s):
    return re.sub(r"/\*.*?\*/", " ", s, flags=re.S)


def lint(page):
    path = os.path.join(DOC, page)
    msgs = []
    rc, _, err = run(["groff", "-man", "-Tutf8", "-ww", "-z", path])
    if rc or err.strip():
        msgs += [f"groff -ww: {l}" for l in err.splitlines()] or [f"groff exit {rc}"]
    for cmd in (["man", "-l", path], ["man", "--warnings", "-l", path]):
        rc, _, err = run(cmd)
        if rc or err.strip():
            msgs += [f"{' '.join(cmd[:-1])}: {l}" for l in err.splitlines()] or [f"exit {rc}"]
    rc, out, err = run(["lexgrog", path])
    if rc:
        msgs.append(f"lexgrog: {out.strip()} {err.strip()}")
    # A text line starting with ' or . is a request: only roff's own
    # requests and the man macros may start a line so.
    for n, line in enumerate(open(path), 1):
        if re.match(r"^'(?!\\\")", line):
            msgs.append(f"line {n} starts with an apostrophe (a control line): {line.strip()}")
    result(not msgs, f"{page}: renders without warnings (groff -ww, man -l, lexgrog)", msgs)


# ------------------------------------------------------------ header parsing
def c_enums(text):
    """{enumerator: value or None} in order, for every enum in text."""
    out = {}
    for body in re.findall(r"enum\s+\w+\s*\{(.*?)\};", text, re.S):
        val = -1
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.match(r"^(\w+)\s*(?:=\s*(.+))?$", item, re.S)
            if not m:
                continue
            name, expr = m.group(1), m.group(2)
            if expr is None:
                val += 1
                out[name] = val
            elif re.fullmatch(r"\d+", expr.strip()):
                val = int(expr)
                out[name] = val
            else:
                out[name] = None    # e.g. UMEM_CMD_MAX = __UMEM_CMD_MAX - 1
    return out


def c_structs(text):
    """{struct name: [normalised member declarations]}."""
    out = {}
    for name, body in re.findall(r"struct\s+(\w+)\s*\{(.*?)\};", text, re.S):
        out[name] = [norm(m) for m in body.split(";") if m.strip()]
    return out


def c_defines(text):
    """[(name, value)] for each single-line #define with a value."""
    out = []
    for m in re.finditer(r"^#define\s+(\w+)[ \t]+(.+?)\s*$", text, re.M):
        out.append((m.group(1), m.group(2)))
    return out


def page_has_struct(rendered, name, members):
    """The rendered page writes out struct NAME { members in order }."""
    text = strip_c_comments(rendered)
    last = None
    for m in re.finditer(r"struct\s+%s\s*\{(.*?)\};" % re.escape(name), text, re.S):
        got = [norm(x) for x in m.group(1).split(";") if x.strip()]
        if got == members:
            return True, None
        last = got
    return False, last


def line_has(rendered_lines, *words):
    """Some line holds every word (as a whole token for identifiers)."""
    for l in rendered_lines:
        nl = norm(l)
        if all(re.search(r"(?<![\w])%s(?![\w])" % re.escape(w), nl) for w in words):
            return True
    return False


def check_umem4():
    page = "umem.4"
    hdr = open(UAPI).read()
    code = strip_c_comments(hdr)
    rendered = render(page)
    lines = rendered.splitlines()
    words = set(re.findall(r"[\w]+", rendered))

    names = sorted(set(n for n in re.findall(r"\bUMEM\w*", code)
                       if not n.startswith("__") and n != "_UAPI_LINUX_UMEM_H"))
    missing = [n for n in names if n not in words]
    result(not missing, f"{page}: names every one of the {len(names)} UMEM_* identifiers "
           "of uapi/linux/umem.h", [f"missing: {n}" for n in missing])

    magic = dict(c_defines(code)).get("UMEMIO")
    bad = []
    n_ioctl = n_const = 0
    for name, value in c_defines(code):
        if not name.startswith("UMEM"):
            continue
        m = re.fullmatch(r"(_IO[RW]*)\(UMEMIO,\s*(0x[0-9a-fA-F]+),\s*(struct \w+)\)", value)
        if m:
            n_ioctl += 1
            enc = f"{m.group(1)}({magic}, {m.group(2)}, {m.group(3)})"
            if not line_has(lines, name) or not any(
                    name in norm(l).split() and norm(enc) in norm(l) for l in lines):
                bad.append(f"{name}: no line with '{name} {enc}'")
        elif re.fullmatch(r'"[^"]*"|\(?\s*\d+U?L{0,2}\s*(<<\s*\d+\s*)?\)?|0x[0-9A-Fa-f]+', value):
            n_const += 1
            v = norm(value)
            if not any(name in norm(l).split() and v in norm(l) for l in lines):
                bad.append(f"{name}: no line with '{name}' and its value {v}")
    result(not bad, f"{page}: every ioctl ({n_ioctl}) with its encoding and every "
           f"constant ({n_const}) with its value, as in the header", bad)

    bad = []
    enums = c_enums(code)
    for name, val in enums.items():
        if name.startswith("__"):
            continue
        if val is not None and not line_has(lines, name, str(val)):
            bad.append(f"{name}: no line with '{name} {val}'")
    result(not bad, f"{page}: every enumerator ({len(enums)}) with its number", bad)

    bad = []
    structs = c_structs(code)
    for name, members in structs.items():
        ok, got = page_has_struct(rendered, name, members)
        if not ok:
            bad.append(f"struct {name}: header {members}, page {got}")
    result(not bad, f"{page}: all {len(structs)} structs written out with the header's "
           "members in order", bad)


def check_libumem3():
    page = "libumem.3"
    hdr = strip_c_comments(open(LIBH).read())
    rendered = render(page)
    words = set(re.findall(r"\w+", rendered))
    funcs = sorted(set(re.findall(r"\b(umem_\w+)\s*\(", hdr)))
    macros = [n for n, _ in c_defines(hdr) if n != "LIBUMEM_H"]
    enums = [n for n in c_enums(hdr)]
    names = funcs + macros + enums + ["umem_log_fn"]
    missing = [n for n in names if n not in words]
    result(not missing, f"{page}: every function ({len(funcs)}), macro and enumerator of "
           "libumem.h", [f"missing: {n}" for n in missing])
    bad = []
    lines = rendered.splitlines()
    for name, value in c_defines(hdr):
        if name == "LIBUMEM_H":
            continue
        if not any(name in norm(l).split() and norm(value) in norm(l) for l in lines):
            bad.append(f"{name}: no line with its value {norm(value)}")
    structs = c_structs(hdr)
    for name, members in structs.items():
        ok, got = page_has_struct(rendered, name, members)
        if not ok:
            bad.append(f"struct {name}: header {members}, page {got}")
    result(not bad, f"{page}: macro values and all {len(structs)} structs as in libumem.h", bad)

    src = open(os.path.join(DOC, page)).read()
    have = example_block(src)
    want = roff_example(open(EXAMPLE).read())
    ok = have is not None and have == want
    details = []
    if have is None:
        details.append(f"no '{EX_BEGIN}' ... '{EX_END}' block")
    elif not ok:
        details.append("differs from Documentation/examples/libumem-example.c: "
                       "run scripts/check-man.py --fix-example")
    if "\t" in open(EXAMPLE).read():
        ok = False
        details.append("the example has tabs (they do not render as written): use spaces")
    result(ok, f"{page}: EXAMPLES holds Documentation/examples/libumem-example.c", details)
    # ... and renders back to the very same text.
    text = render(page).splitlines()
    body = [l for l in open(EXAMPLE).read().splitlines()]
    first = body[0]
    idx = next((i for i, l in enumerate(text) if l.strip() == first.strip()), None)
    got = []
    if idx is not None:
        ind = len(text[idx]) - len(text[idx].lstrip())
        got = [l[ind:].rstrip() for l in text[idx:idx + len(body)]]
    result(got == [l.rstrip() for l in body],
           f"{page}: the rendered example is the example file, character for character",
           [] if got == body else [f"first difference at line "
                                   f"{next((i + 1 for i, (a, b) in enumerate(zip(got, body)) if a != b.rstrip()), len(got) + 1)}"])


def roff_example(code):
    """The example program as roff: .EX block, escapes, no request lines."""
    out = [".in +4n", ".EX"]
    for line in code.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e").replace("-", "\\-")
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    out += [".EE", ".in"]
    return "\n".join(out) + "\n"


def example_block(src):
    b = src.find(EX_BEGIN)
    e = src.find(EX_END)
    if b < 0 or e < b:
        return None
    b = src.index("\n", b) + 1
    return src[b:e]


def fix_example():
    path = os.path.join(DOC, "libumem.3")
    src = open(path).read()
    b = src.find(EX_BEGIN)
    e = src.find(EX_END)
    if b < 0 or e < b:
        sys.exit(f"check-man: {path} has no {EX_BEGIN} ... {EX_END} markers")
    b = src.index("\n", b) + 1
    new = src[:b] + roff_example(open(EXAMPLE).read()) + src[e:]
    if new != src:
        open(path, "w").write(new)
        print(f"check-man: example copied into {path}")


def check_options(page, binary):
    rc, out, err = run([binary, "--help"])
    if rc != 0:
        result(False, f"{page}: {os.path.basename(binary)} --help failed ({rc})", err.splitlines())
        return
    opts = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])", out)))
    rendered = render(page)
    missing = [o for o in opts
               if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), rendered)]
    result(not missing, f"{page}: documents all {len(opts)} options of "
           f"{os.path.basename(binary)} --help", [f"missing: {o}" for o in missing])


def main():
    args = sys.argv[1:]
    if args == ["--fix-example"]:
        fix_example()
        return 0
    bindir = os.path.join(REPO, "userspace", "build", "bin")
    if len(args) == 2 and args[0] == "--bindir":
        bindir = args[1]
    elif args:
        print(__doc__, file=sys.stderr)
        return 2
    for p in PAGES:
        lint(p)
    check_umem4()
    check_libumem3()
    for page, prog in HELP_PAGES.items():
        b = os.path.join(bindir, prog)
        if os.access(b, os.X_OK):
            check_options(page, b)
        else:
            result(False, f"{page}: {b} not built (make userspace)")
    print(f"{npass} passed, {nfail} failed")
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
