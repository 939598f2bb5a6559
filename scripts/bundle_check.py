"""Checks databricks.yml the way the Databricks CLI reads it, without a workspace.

1. Shape: the bundle validates against the CLI's own JSON schema (databricks/cli
   bundle/schema/jsonschema.json, a copy in the shared reference folder), as `databricks bundle validate`
   checks it. The schema's patterns use Go's \\p{L}/\\p{N}: matched with the `regex` module.
2. Upload set: the files `databricks bundle deploy` would upload, computed as the CLI computes them
   (libs/sync/filelist.go: files under sync.paths that git does not ignore, plus sync.include, minus
   sync.exclude; libs/git/repository.go: .gitignore files at every level, .git/info/exclude, `.git`
   and `.databricks` always ignored; patterns read as github.com/sabhiram/go-gitignore reads them;
   symlinks skipped). The port is checked against `git ls-files` on this checkout first.
3. Platform rules, each from where it is written down (see RULES below).

Usage: bundle_check.py SCHEMA [--bundle-root DIR] [--app-dir DIR] [--list]
Exits non-zero with every failed rule listed.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import regex
import yaml

APPS_FILE_LIMIT = 10 * 1024 * 1024  # Databricks Apps: each uploaded file at most 10 MB.
SECRET_NAMES = re.compile(r"(^|/)(\.env$|\.databrickscfg|\.git(/|$)|data/|[^/]*\.db(-wal|-shm)?$|[^/]*\.pem$)")


# --- github.com/sabhiram/go-gitignore, as the CLI uses it ------------------------------------
def go_gitignore_pattern(line):
    """One line of an ignore file as go-gitignore compiles it: (regex, negated) or None."""
    line = line.rstrip("\r")
    if line.startswith("#"):
        return None
    line = line.strip(" ")
    if not line:
        return None
    negate = False
    if line[0] == "!":
        negate = True
        line = line[1:]
    if re.match(r"^(#|!)", line):
        line = line[1:]
    if re.search(r"([^/+])/.*\*\.", line) and line[0] != "/":
        line = "/" + line
    line = line.replace(".", r"\.")
    magic = "#$~"
    if line.startswith("/**/"):
        line = line[1:]
    line = line.replace("/**/", "(/|/.+/)")
    line = line.replace("**/", "(|." + magic + "/)")
    line = line.replace("/**", "(|/." + magic + ")")
    line = line.replace("\\*", "\\" + magic)
    line = line.replace("*", "([^/]*)")
    line = line.replace("?", r"\?")
    line = line.replace(magic, "*")
    expr = line + ("(|.*)$" if line.endswith("/") else "(|/.*)$")
    expr = "^(|/)" + expr[1:] if expr.startswith("/") else "^(|.*/)" + expr
    try:
        return re.compile(expr), negate
    except re.error:
        return None  # Go's regexp.Compile error is dropped the same way.


class IgnoreLines:
    def __init__(self, lines):
        self.patterns = [p for p in map(go_gitignore_pattern, lines) if p]

    def matches(self, path):
        matched = False
        for pattern, negate in self.patterns:
            if pattern.search(path):
                if not negate:
                    matched = True
                elif matched:
                    matched = False
        return matched


def ignore_file(path):
    try:
        return IgnoreLines(Path(path).read_text().split("\n"))
    except OSError:
        return IgnoreLines([])


class Repository:
    """libs/git/repository.go: ignore rules per directory prefix, loaded lazily."""

    def __init__(self, root):
        self.root = Path(root)
        git_dir = self.root / ".git"
        self.rules = {
            ".": [
                IgnoreLines([".git"]),
                ignore_file(git_dir / "info" / "exclude"),
                ignore_file(self.root / ".gitignore"),
                # libs/git/view.go SetupDefaults.
                IgnoreLines([".databricks"]),
            ]
        }

    def rules_for(self, prefix):
        if prefix not in self.rules:
            self.rules[prefix] = [ignore_file(self.root / prefix / ".gitignore")]
        return self.rules[prefix]

    def ignore(self, rel):
        parts = rel.split("/")
        trailing = ""
        if parts[-1] == "":
            parts, trailing = parts[:-1], "/"
        if parts == ["."]:
            return False
        for i in range(len(parts)):
            prefix = os.path.normpath("/".join(parts[:i]) or ".")
            suffix = os.path.normpath("/".join(parts[i:])) + trailing
            if any(r.matches(suffix) for r in self.rules_for(prefix)):
                return True
        return False

    def ignore_dir(self, rel):
        return self.ignore(rel) or self.ignore(rel + "/")


def walk(root, start, skip_dir, skip_file):
    """fs.WalkDir from `start` (relative to root): regular files only, in lexical order."""
    out = []
    base = Path(root)
    if not (base / start).exists():
        raise SystemExit(f"sync path {start} does not exist (build it first: scripts/build-deploy.sh)")
    if start != "." and (base / start).is_dir() and skip_dir(start):
        return out
    for dirpath, dirnames, filenames in os.walk(base / start):
        rel_dir = os.path.relpath(dirpath, base)
        rel = (lambda name: name) if rel_dir == "." else (lambda name, d=rel_dir: f"{d}/{name}")
        dirnames[:] = sorted(d for d in dirnames if not (base / rel(d)).is_symlink() and not skip_dir(rel(d)))
        for name in sorted(filenames):
            path = base / rel(name)
            if path.is_symlink() or not path.is_file():
                continue
            if not skip_file(rel(name)):
                out.append(rel(name))
    return out


def glob_set(root, patterns):
    """libs/fileset/glob.go: every file under root whose path a pattern matches."""
    if not patterns:
        return []
    matcher = IgnoreLines([os.path.normpath(p) for p in patterns])
    return walk(root, ".", lambda d: False, lambda f: not matcher.matches(f))


def upload_set(root, sync):
    repo = Repository(root)
    paths = [os.path.normpath(p) for p in (sync.get("paths") or ["."])]
    files = set()
    for p in paths:
        files.update(walk(root, p, repo.ignore_dir, repo.ignore))
    files.update(glob_set(root, sync.get("include") or []))
    files.difference_update(glob_set(root, sync.get("exclude") or []))
    return sorted(files)


# --- the checks ------------------------------------------------------------------------------
def schema_validator(schema_path):
    schema = json.loads(Path(schema_path).read_text())

    def pattern(validator, value, instance, _schema):
        if validator.is_type(instance, "string") and not regex.search(value, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {value!r}")

    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})
    return cls(schema)


def schema_errors(validator, doc):
    errors = []
    for error in validator.iter_errors(doc):
        # oneOf errors name the branch that came closest.
        best = jsonschema.exceptions.best_match([error])
        where = "/".join(str(p) for p in best.absolute_path) or "(top)"
        errors.append(f"{where}: {best.message[:300]}")
    return errors


def variables_used(doc):
    text = json.dumps(doc)
    return set(re.findall(r"\$\{var\.([A-Za-z0-9_-]+)\}", text))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("schema")
    parser.add_argument("--bundle-root", default=".")
    parser.add_argument("--list", action="store_true", help="print the upload set")
    args = parser.parse_args()
    root = Path(args.bundle_root).resolve()
    doc = yaml.safe_load((root / "databricks.yml").read_text())
    failures = []

    def rule(ok, what):
        print(("  ok   " if ok else "  FAIL ") + what)
        if not ok:
            failures.append(what)

    validator = schema_validator(args.schema)
    print("Shape (the CLI's JSON schema):")
    errors = schema_errors(validator, doc)
    rule(not errors, "databricks.yml validates against the bundle schema" + "".join("\n         " + e for e in errors))
    # The check can fail: an env entry in app.yaml's spelling (valueFrom) is not in the bundle's schema.
    broken = json.loads(json.dumps(doc))
    broken["resources"]["apps"]["agent_app"]["config"]["env"][0] = {"name": "X", "valueFrom": "experiment"}
    rule(bool(schema_errors(validator, broken)), "a bundle with `valueFrom` (app.yaml's spelling) is refused")

    print("Platform rules:")
    app = doc["resources"]["apps"]["agent_app"]
    declared = set((doc.get("variables") or {}).keys())
    rule(variables_used(doc) <= declared,
         f"every ${{var.*}} is declared (undeclared: {sorted(variables_used(doc) - declared)})")
    for name, target in (doc.get("targets") or {}).items():
        if target.get("mode") == "production":
            rule(bool((target.get("workspace") or {}).get("root_path")),
                 f"production target {name} sets workspace.root_path (validate_target_mode.go)")
    kinds = {next(k for k in r if k != "name"): r for r in app.get("resources", [])}
    rule("database" in kinds or "postgres" in kinds, "the app binds a database resource (chats survive restarts)")
    rule("experiment" in kinds and "${var.experiment_id}" in json.dumps(kinds["experiment"]),
         "the app traces to the experiment variable quickstart writes (one experiment, local and deployed)")
    env_names = {e["name"] for e in app["config"]["env"]}
    app_yaml = yaml.safe_load((root / "deploy" / "app.yaml").read_text())
    rule(app_yaml["command"] == app["config"]["command"], "app.yaml and databricks.yml start the app the same way")
    rule({e["name"] for e in app_yaml["env"]} <= env_names, "every app.yaml variable is also set by the bundle")
    rule(all("valueFrom" not in e for e in app["config"]["env"]), "the bundle says value_from (the CLI ignores valueFrom)")
    rule(all("value_from" not in e for e in app_yaml["env"]), "app.yaml says valueFrom (its own spelling)")

    print("What `databricks bundle deploy` uploads:")
    # The port of the CLI's ignore rules agrees with git itself on this checkout.
    if (root / ".git").exists():
        ours = set(upload_set(root, {"paths": ["."]}))
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                                capture_output=True, check=True).stdout.decode().split("\0")
        theirs = {f for f in listed if f and (root / f).is_file() and not (root / f).is_symlink()}
        rule(ours == theirs, f"the ignore rules agree with git ls-files ({len(ours)} files; "
                             f"only ours: {sorted(ours - theirs)[:5]}, only git's: {sorted(theirs - ours)[:5]})")
    files = upload_set(root, doc.get("sync") or {})
    source = os.path.normpath(app["source_code_path"])
    inside = [f[len(source) + 1:] for f in files if f.startswith(source + "/")]
    total = sum((root / f).stat().st_size for f in files)
    print(f"         {len(files)} files, {total / 1e6:.1f} MB; the app folder {source}: {len(inside)} files")
    if args.list:
        for f in files:
            print(f"         {(root / f).stat().st_size:>10} {f}")
    rule(bool(files), "there are files to sync (the CLI warns: 'There are no files to sync')")
    bundle = [f"site/pkg/agent-app.{kind}{copy}" for kind in ("wasm", "js", "css") for copy in ("", ".br", ".gz")]
    for needed in ("start.sh", "app.yaml", *bundle):
        rule(needed in inside, f"{source}/{needed} is uploaded")
    parts = sorted(f for f in inside if re.fullmatch(r"server\.gz\.\d\d", f))
    rule(bool(parts) and parts == [f"server.gz.{i:02}" for i in range(len(parts))],
         f"the server binary is uploaded whole ({len(parts)} parts)")
    rule(all(f.startswith(source + "/") for f in files), "nothing outside the app folder is uploaded")
    secret = [f for f in files if SECRET_NAMES.search(f)]
    rule(not secret, f"nothing secret is uploaded (.env, data/, *.db, .databrickscfg, .git): {secret}")
    big = [f for f in files if (root / f).stat().st_size > APPS_FILE_LIMIT]
    rule(not big, f"every file is at most 10 MB (the Apps upload limit): {big}")

    if failures:
        print(f"\n{len(failures)} bundle check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("bundle checks passed")


if __name__ == "__main__":
    main()
