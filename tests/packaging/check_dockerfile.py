#!/usr/bin/env python3
"""Static checks of the Dockerfile and .dockerignore (no Docker engine runs here).

- Stages: build on debian:bookworm, runtime on debian:bookworm-slim, targets
  `operator` and `node`, node last (the default target).
- The build stage installs exactly scripts/install-deps.sh's BUILD_PACKAGES
  (its TEST_PACKAGES and NODE_PACKAGES are for running tests, which no image
  does, and must include what the tests import or run), and configures and
  builds without presets the targets dynamo-node, dynamoctl and
  dynamo-operator.
- Every COPY source exists in the build context and .dockerignore does not
  exclude it, nor any directory the CMake build adds.
- The runtime packages exist in Debian (apt-cache show) and, when the shipped
  binaries are built (--binaries), every shared library they load (ldd) comes
  from a runtime package, its dependencies or the base image's required set.
- Images run as the numeric user 10001, the node has VOLUME /var/lib/dynamo,
  both have an exec-form ENTRYPOINT and a HEALTHCHECK on /healthz, apt lists
  are removed in the layer that fetched them, no ADD, no :latest.

usage: check_dockerfile.py --root REPO [--binaries FILE...]
"""
import argparse
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL {msg}")


def expect(cond, msg):
    if not cond:
        fail(msg)
    return cond


def parse_dockerfile(path):
    """[(instruction, arguments, line number)] with continuations joined."""
    out, buf, start = [], "", 0
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker
        if not buf:
            start = i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip(), start))
        buf = ""
    if buf:
        fail(f"Dockerfile ends inside a continued line (from line {start})")
    return out


class Stage:
    def __init__(self, base, name, line):
        self.base, self.name, self.line = base, name, line
        self.parent = None
        self.instructions = []

    def own(self, word):
        return [(a, l) for w, a, l in self.instructions if w == word]

    def effective(self, word):
        """The last value of an inherited setting (USER, HEALTHCHECK, ENTRYPOINT...)."""
        s = self
        while s:
            vals = s.own(word)
            if vals:
                return vals[-1][0]
            s = s.parent
        return None


def stages_of(instrs):
    args, stages = {}, []
    for word, rest, line in instrs:
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif word == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            st = Stage(base, name, line)
            for prev in stages:
                if prev.name == base:
                    st.parent = prev
            stages.append(st)
        elif stages:
            stages[-1].instructions.append((word, rest, line))
    return stages


def apt_packages(run_text):
    """Packages of every `apt-get install` in a RUN's shell text."""
    pkgs = []
    for cmd in re.split(r"&&|;|\|\|", run_text):
        words = cmd.split()
        if "apt-get" in words and "install" in words:
            after = words[words.index("install") + 1:]
            pkgs.extend(w for w in after if not w.startswith("-"))
    return pkgs


# What the test suites need from Debian beyond the build: the operator tests'
# API double and check-packaging validate DynamoClusters with PyYAML and
# jsonschema; check-packaging runs yamllint, unzip and promtool.
TEST_NEEDS = {"python3-yaml", "python3-jsonschema", "yamllint", "unzip", "prometheus"}


def install_deps_packages(path, array="BUILD_PACKAGES"):
    with open(path) as f:
        text = f.read()
    m = (re.search(r"^" + array + r"=\(\n(.*?)\n\)", text, re.S | re.M)
         or re.search(r"^" + array + r"=\(([^\n]*)\)", text, re.M))
    if not m:
        fail(f"scripts/install-deps.sh: no {array}=( ... ) array")
        return []
    pkgs = []
    for line in m.group(1).split("\n"):
        pkgs.extend(line.split("#", 1)[0].split())
    return pkgs


def dockerignore(path):
    pats = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    pats.append(line)
    return pats


def ignored(rel, patterns):
    """Docker's rule: the last matching pattern wins; a pattern matching a
    directory excludes everything under it."""
    rel = os.path.normpath(rel).lstrip("/")
    if rel in (".", ""):
        return False
    parts = rel.split("/")
    result = False
    for p in patterns:
        neg = p.startswith("!")
        pat = os.path.normpath(p[1:] if neg else p).lstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and (
                    fnmatch.fnmatchcase(prefix, pat[3:]) or fnmatch.fnmatchcase(parts[i - 1], pat[3:]))):
                result = not neg
                break
    return result


def cmake_dirs(root):
    """Directories the CMake build adds (add_subdirectory), recursively."""
    out, todo = [], [""]
    while todo:
        d = todo.pop()
        cm = os.path.join(root, d, "CMakeLists.txt")
        if not os.path.exists(cm):
            continue
        with open(cm) as f:
            text = re.sub(r"#.*", "", f.read())
        for m in re.finditer(r"add_subdirectory\s*\(\s*([^\s)]+)", text):
            sub = os.path.normpath(os.path.join(d, m.group(1)))
            out.append(sub)
            todo.append(sub)
    return out


def cmake_executables(root):
    names = set()
    for d in [""] + cmake_dirs(root):
        cm = os.path.join(root, d, "CMakeLists.txt")
        if os.path.exists(cm):
            with open(cm) as f:
                names.update(re.findall(r"add_executable\s*\(\s*([\w.+-]+)", f.read()))
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--binaries", nargs="*", default=[])
    args = ap.parse_args()
    root = args.root
    instrs = parse_dockerfile(os.path.join(root, "Dockerfile"))
    stages = stages_of(instrs)
    by_name = {s.name: s for s in stages if s.name}
    print(f"Dockerfile: stages {[f'{s.name}<-{s.base}' for s in stages]}")

    # Stages and bases.
    build, runtime = by_name.get("build"), by_name.get("runtime")
    expect(build and build.base == "debian:bookworm", "a stage 'build' FROM debian:bookworm")
    expect(runtime and runtime.base == "debian:bookworm-slim", "a stage 'runtime' FROM debian:bookworm-slim")
    expect("node" in by_name and "operator" in by_name, "targets 'node' and 'operator'")
    expect(stages and stages[-1].name == "node", "node is the last stage (the default target)")
    for s in stages:
        expect(not s.base.endswith(":latest") and (":" in s.base or "@" in s.base or s.parent),
               f"stage {s.name}: base {s.base} has a fixed tag")
    for w, a, l in instrs:
        expect(w != "ADD", f"line {l}: ADD (use COPY)")
        expect(w != "MAINTAINER", f"line {l}: MAINTAINER is deprecated")

    # The build stage: install-deps.sh's packages, configure without presets, the three targets.
    if build:
        pkgs = [p for a, _ in build.own("RUN") for p in apt_packages(a)]
        deps = os.path.join(root, "scripts", "install-deps.sh")
        want = install_deps_packages(deps)
        expect(sorted(pkgs) == sorted(want),
               f"build stage installs scripts/install-deps.sh's BUILD_PACKAGES: missing "
               f"{sorted(set(want) - set(pkgs))}, extra {sorted(set(pkgs) - set(want))}")
        tests = install_deps_packages(deps, "TEST_PACKAGES")
        node = install_deps_packages(deps, "NODE_PACKAGES")
        expect(not (set(tests) | set(node)) & set(want),
               f"install-deps.sh: test-only packages also in BUILD_PACKAGES: "
               f"{sorted((set(tests) | set(node)) & set(want))}")
        expect(TEST_NEEDS <= set(tests) | set(want),
               f"install-deps.sh installs what the tests need: missing {sorted(TEST_NEEDS - set(tests) - set(want))}")
        expect({"nodejs", "npm"} <= set(node), "install-deps.sh: NODE_PACKAGES are nodejs and npm")
        runs = " ".join(a for a, _ in build.own("RUN"))
        expect("--preset" not in runs, "build stage configures without CMake presets")
        expect(re.search(r"cmake -S \S+ -B \S+", runs), "build stage runs a plain cmake -S/-B configure")
        m = re.search(r"--target ((?:[\w-]+ ?)+)", runs)
        targets = set(m.group(1).split()) if m else set()
        expect(targets == {"dynamo-node", "dynamoctl", "dynamo-operator"},
               f"build targets dynamo-node dynamoctl dynamo-operator, got {sorted(targets)}")
        defined = cmake_executables(root)
        undefined = sorted(targets - defined)
        if undefined:
            # Not a failure while the binaries are being written; `docker build` fails until then.
            print(f"  note: no add_executable() for {undefined} in the CMake tree yet")

    # COPY sources and .dockerignore.
    patterns = dockerignore(os.path.join(root, ".dockerignore"))
    expect(patterns, ".dockerignore exists and excludes something")
    for s in stages:
        for a, l in s.own("COPY"):
            words = shlex.split(a)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            if len(paths) < 2:
                fail(f"line {l}: COPY needs a source and a destination")
                continue
            src = paths[:-1]
            frm = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
            if frm:
                names = [x.name for x in stages[:stages.index(s)]]
                expect(frm[0] in names, f"line {l}: COPY --from={frm[0]} names an earlier stage")
                continue
            for p in src:
                expect(os.path.exists(os.path.join(root, p)), f"line {l}: COPY source {p} exists")
                expect(not ignored(p, patterns), f"line {l}: COPY source {p} is excluded by .dockerignore")
    if any(shlex.split(a)[0] == "." for s in stages for a, _ in s.own("COPY")):
        for d in ["CMakeLists.txt", "scripts/install-deps.sh"] + cmake_dirs(root):
            expect(not ignored(d, patterns), f".dockerignore excludes {d}, which the build needs")
        for d in ("build", ".git", "build-asan"):
            expect(ignored(d, patterns), f".dockerignore keeps {d} out of the context")

    # The runtime: packages exist, apt lists removed, user, volume, health checks, entrypoints.
    runtime_pkgs = []
    if runtime:
        for a, l in runtime.own("RUN"):
            p = apt_packages(a)
            if p:
                runtime_pkgs += p
                expect("--no-install-recommends" in a, f"line {l}: apt-get install --no-install-recommends")
                expect("rm -rf /var/lib/apt/lists" in a, f"line {l}: apt lists removed in the same layer")
            expect("useradd" not in a or re.search(r"--uid 10001\b", a), f"line {l}: useradd --uid 10001")
        res = subprocess.run(["apt-cache", "show", "--no-all-versions"] + runtime_pkgs,
                             capture_output=True, text=True)
        found = set(re.findall(r"^Package: (\S+)$", res.stdout, re.M))
        expect(found == set(runtime_pkgs), f"runtime packages exist in Debian: missing {sorted(set(runtime_pkgs) - found)}")
        print(f"Dockerfile: runtime packages {runtime_pkgs} exist in the Debian archive")
        check_binaries(args.binaries, runtime_pkgs)
    for name, port in (("node", "9100"), ("operator", "8080")):
        s = by_name.get(name)
        if not s:
            continue
        user = s.effective("USER")
        expect(user and re.fullmatch(r"10001(:10001)?", user), f"{name}: runs as user 10001 (got {user})")
        hc = s.effective("HEALTHCHECK") or ""
        expect("/healthz" in hc and port in hc, f"{name}: HEALTHCHECK on :{port}/healthz")
        ep = s.effective("ENTRYPOINT") or ""
        try:
            ep_list = json.loads(ep)
        except ValueError:
            ep_list = None
        expect(isinstance(ep_list, list), f"{name}: ENTRYPOINT in exec (JSON) form")
        expect(ep_list and ep_list[0] == f"/usr/local/bin/dynamo-{'node' if name == 'node' else 'operator'}",
               f"{name}: ENTRYPOINT runs its binary")
        expose = " ".join(a for a, _ in s.own("EXPOSE"))
        expect(port in expose.split(), f"{name}: EXPOSE {port}")
    node = by_name.get("node")
    if node:
        vols = [a for a, _ in node.own("VOLUME")] + ([a for a, _ in runtime.own("VOLUME")] if runtime else [])
        expect(any("/var/lib/dynamo" in v for v in vols), "node: VOLUME /var/lib/dynamo")
        expect("7000" in " ".join(a for a, _ in node.own("EXPOSE")).split(), "node: EXPOSE 7000")
        cmd = node.effective("CMD") or ""
        expect("--data-dir=/var/lib/dynamo" in cmd, "node: CMD keeps data in /var/lib/dynamo")
        # A preloaded library must be installed and linked at that path by the runtime stage,
        # or every process of the image fails to start.
        envs = " ".join(a for a, _ in node.own("ENV"))
        m = re.search(r"LD_PRELOAD=(\S+)", envs)
        if m:
            runs = " ".join(a for a, _ in runtime.own("RUN")) if runtime else ""
            expect(re.search(r"ln -s .*\s" + re.escape(m.group(1)) + r"(\s|$)", runs),
                   f"node: LD_PRELOAD {m.group(1)} is created by the runtime stage (ln -s)")
            expect("libjemalloc2" in runtime_pkgs or "jemalloc" not in m.group(1),
                   "node: the runtime stage installs libjemalloc2 for LD_PRELOAD")

    if failures:
        print(f"check_dockerfile: {len(failures)} failure(s)")
        return 1
    print("check_dockerfile: ok")
    return 0


def check_binaries(binaries, runtime_pkgs):
    if not binaries:
        print("  note: dynamo-node, dynamoctl, dynamo-operator are not built here; "
              "the ldd check of their libraries against the runtime packages was skipped")
        return
    closure = set(runtime_pkgs)
    res = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                          "--no-pre-depends"] + runtime_pkgs, capture_output=True, text=True)
    for line in res.stdout.split("\n"):
        m = re.match(r"^\s*(?:\|)?Depends: <?([\w.+-]+)>?", line) or re.match(r"^([\w.+-]+)$", line)
        if m:
            closure.add(m.group(1))
    for b in binaries:
        out = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
        libs = re.findall(r"=> (/\S+)", out)
        expect("not found" not in out, f"{b}: ldd finds every library")
        for lib in libs:
            real = os.path.realpath(lib)
            pkg = None
            for cand in (lib, real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1)):
                r = subprocess.run(["dpkg-query", "-S", cand], capture_output=True, text=True)
                if r.returncode == 0:
                    pkg = r.stdout.split(":")[0].strip()
                    break
            if not expect(pkg, f"{b}: {lib} belongs to no Debian package"):
                continue
            prio = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", pkg], capture_output=True, text=True).stdout
            expect(pkg in closure or prio == "required",
                   f"{os.path.basename(b)} loads {os.path.basename(lib)} from {pkg}, which the runtime stage does not install")
        print(f"  ldd {os.path.basename(b)}: {len(libs)} libraries, all from runtime packages")


if __name__ == "__main__":
    sys.exit(main())
