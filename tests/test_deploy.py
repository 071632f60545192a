"""``publish deploy``: the template (generated from the route table, linted by cfn-lint), the
Lambda packages (built, sized, imported and answering from their zips in a clean interpreter),
and deploy / redeploy / update / plan / status / destroy against moto's server.

moto's CloudFormation makes the S3 bucket, the IAM role, the log groups and the Lambda functions
(from their zips in S3) but skips API Gateway v2, CloudFront and bucket policies, reports no
outputs after a change set, and cannot run Lambda code without Docker: those parts are checked
here from the template itself and by running each packaged handler from its zip.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from handlers.local import event_for
from publisher.functions import BY_NAME, ROUTES
from publisher.cli import main
from publisher.config.models import Deploy
from publisher.deploy.package import REQUIREMENTS, Package, build_package, default_cache, deps_folder, smoke_test, unpacked
from publisher.deploy.template import EXPORTS_PREFIX, template, template_yaml

from .conftest import run_build
from .servers import moto_server
from .test_s3 import environ

ROOT = Path(__file__).resolve().parents[1]
#: Lambda's runtime the packages are checked for (its interpreter is on this machine, under pyenv)
RUNTIME = Deploy().runtime


def test_template_is_generated_from_the_routes_and_lints() -> None:
    """infra/template.yaml is what the code generates; cfn-lint finds nothing in it; every route
    of the route table is an API route to its module's function (the bare prefix too)."""
    assert (ROOT / "infra" / "template.yaml").read_text() == template_yaml(), "run: publish template > infra/template.yaml"
    lint = subprocess.run([shutil.which("cfn-lint") or str(Path(sys.executable).with_name("cfn-lint")), str(ROOT / "infra" / "template.yaml")],
                          capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    resources = template()["Resources"]
    routes = {r["Properties"]["RouteKey"]: r["Properties"]["Target"]["Fn::Sub"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    for route in ROUTES:
        target = f"integrations/${{{route.module.capitalize()}Integration}}"
        if route.path.endswith("/"):  # API Gateway route keys do not end in a slash: $default takes these
            assert route.module == "metadata" and routes["$default"] == target
        else:
            assert routes[f"{route.method} {route.path}"] == target
            if route.method == "GET":  # HEAD reaches the same function (not $default, which answered 405)
                assert routes[f"HEAD {route.path}"] == target
    assert "GET /api/v1/metadata" in routes and "GET /api/v1/search" in routes  # the root node
    assert not [k for k in routes if k.startswith("HEAD ") and routes.get("GET " + k[5:]) != routes[k]]
    assert len(resources) < 500  # CloudFormation's limit on resources in one template
    functions = {k: r for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert sorted(f["Properties"]["Handler"] for f in functions.values()) == [f"handlers.{m}.lambda_handler" for m in sorted(REQUIREMENTS)]


def test_api_gateway_logs_every_request_and_the_bucket_aborts_cut_uploads() -> None:
    """What never reached a function (API Gateway's throttling, its 504 at 30 s, a crashed
    function's 502) was logged nowhere; the line names the route, never the path or query (a
    private node's name, an api_key). Multipart uploads cut short were billed until aborted."""
    resources = template()["Resources"]
    settings = resources["DefaultStage"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(settings["Format"])
    assert {"requestId", "route", "status", "integrationError", "latencyMs"} <= set(fields)
    assert not any(v in ("$context.path", "$context.querystring") or "header" in v.lower() for v in fields.values())
    assert resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    rules = resources["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"Id": "abort-incomplete-uploads", "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}} in rules


def test_the_handlers_role_reads_the_store_and_writes_only_exports() -> None:
    statements = template()["Resources"]["HandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = {s["Sid"]: (s["Action"], json.dumps(s["Resource"])) for s in statements}
    assert actions["ReadPublished"][0] == "s3:GetObject"
    assert actions["WriteSpilledAnswers"][0] == "s3:PutObject" and f"{EXPORTS_PREFIX}*" in actions["WriteSpilledAnswers"][1]
    assert not any("*" == s["Action"] or s["Action"] == "s3:*" for s in statements)
    assert all("logs:" in json.dumps(a) for sid, (a, _) in actions.items() if sid == "OwnLogs")
    assert actions["ReadApiKeys"] == ("dynamodb:GetItem", json.dumps({"Fn::GetAtt": ["KeysTable", "Arn"]}))  # one item, no scan
    policy = template()["Resources"]["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert policy[0]["Effect"] == "Deny" and policy[1]["Fn::If"][0] == "Public"  # public read is an explicit, switchable statement


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Package]:
    """The three packages for the default runtime, on x86_64: the architecture this machine runs."""
    out = tmp_path_factory.mktemp("packages")
    return {f: build_package(f, RUNTIME, "x86_64", out) for f in sorted(REQUIREMENTS)}


@pytest.fixture(scope="module")
def answer(packages: dict[str, Package]) -> Iterator[Callable[..., dict[str, object] | None]]:
    """``smoke_test`` of a function's package, its zip unpacked once for the module (1.5-3 s
    each) and every event answered by a new ``python -I -S`` from that folder."""
    with contextlib.ExitStack() as stack:
        folders: dict[str, Path] = {}

        def answer(function: str, event: dict[str, object], env: dict[str, str]) -> dict[str, object] | None:
            if function not in folders:
                folders[function] = stack.enter_context(unpacked(packages[function]))
            return smoke_test(packages[function], event, env, folders[function])

        yield answer


def test_packages_hold_only_what_each_function_needs(packages: dict[str, Package]) -> None:
    for function, package in packages.items():
        assert package.unzipped_bytes <= 250 * 2**20, function
        names = zipfile.ZipFile(package.zip_path).namelist()
        assert f"handlers/{function}.py" in names and "publisher/catalog.py" in names
        assert not any(n.startswith(("publisher/readers/", "publisher/writers/", "publisher/deploy/", "publisher/build")) for n in names)
        assert not any(n.startswith(("boto3/", "botocore/", "s3fs/", "pandas/", "xarray/")) for n in names)
        assert any(n.startswith("fsspec/") for n in names) == (function == "tables")  # awkward imports it (no handler reads through it)
        assert any(n.startswith("h5py/") for n in names) == (function == "tables")  # container/full as HDF5
        assert not any("/tests/" in n and not n.startswith("numpy/") for n in names)
        assert any(n.endswith(f".cpython-{RUNTIME.removeprefix('python').replace('.', '')}.pyc") for n in names)  # precompiled
        assert any(n.startswith("numpy-") and n.endswith(".dist-info/METADATA") for n in names)  # dist-info kept
        assert package.key == f"lambda/{function}-{package.sha256[:16]}.zip"
    assert packages["metadata"].unzipped_bytes <= BY_NAME["metadata"].target_bytes
    assert not any(n.startswith("pyarrow/") for n in zipfile.ZipFile(packages["metadata"].zip_path).namelist())


def test_tables_package_serves_awkward_arrays_from_its_zip(answer: Callable[..., Any], tmp_path: Path) -> None:
    """awkward ships in the tables package (imported inside the awkward routes): the tiled
    client's POST of form keys (base64, as API Gateway passes it) and a JSON export answer."""
    import h5py

    (tmp_path / "data").mkdir()
    with h5py.File(tmp_path / "data" / "rag.h5", "w") as f:
        ds = f.create_dataset("v", (2,), dtype=h5py.vlen_dtype(np.dtype("<i8")))
        ds[0], ds[1] = [1, 2, 3], [4]
    site = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}]})
    form = site.node("rag/v")["structure"]["form"]
    env = {"SKYSHELF_STORE": site.store.url}
    post = event_for("POST", "/api/v1/awkward/buffers/rag/v", "", {"host": "example.org", "accept": "application/zip"}, "127.0.0.1",
                     json.dumps([form["form_key"], form["content"]["form_key"]]).encode())
    zipped = answer("tables", post, env)
    assert zipped is not None and zipped["statusCode"] == 200 and zipped["headers"]["Content-Type"] == "application/zip", zipped
    full = answer("tables", event_for("GET", "/api/v1/awkward/full/rag/v", "format=json", {}, "127.0.0.1"), env)
    assert full is not None and full["statusCode"] == 200, full
    import base64

    assert json.loads(base64.b64decode(full["body"]) if full.get("isBase64Encoded") else full["body"]) == [[1, 2, 3], [4]]


def test_packages_are_reproducible_and_reused_only_when_unchanged(packages: dict[str, Package], tmp_path: Path) -> None:
    """A deploy zipped ~200 MB for every function each time (~25 s). A zip is kept by its inputs
    and reused when none changed; one whose inputs changed (a plug-in, the third-party part
    installed again), or whose kept bytes were altered, is built again, and a package built again
    is the same bytes (the zip is deterministic). Caches of their own, so that no earlier run kept
    a zip: one with a copy of the installed third-party part, where a package built anew is the
    fixture's bytes; and one whose third-party part is PyJWT's alone (under the same name: the
    cache cannot tell), where the package is rebuilt in a fraction of a second instead of ~5 s
    (compressing numpy and cryptography) for each change that must rebuild it."""
    deps = deps_folder("metadata", RUNTIME, "x86_64", (), default_cache())
    whole = tmp_path / "whole"
    shutil.copytree(deps, whole / deps.name, symlinks=True)
    anew = build_package("metadata", RUNTIME, "x86_64", tmp_path / "anew", whole)
    assert not anew.reused and anew.sha256 == packages["metadata"].sha256  # built anew: the same bytes

    cache = tmp_path / "cache"
    jwt_only = (".complete", "jwt", "pyjwt")  # (and the mark that the part is complete)
    shutil.copytree(deps, cache / deps.name, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if folder == str(deps) and not n.lower().startswith(jwt_only)])
    assert (cache / deps.name / ".complete").exists() and (cache / deps.name / "jwt" / "__init__.py").exists()
    changed = build_package("metadata", RUNTIME, "x86_64", tmp_path / "changed", cache, plugins=("cachetools",))
    assert not changed.reused
    assert any(n.startswith("cachetools/") for n in zipfile.ZipFile(changed.zip_path).namelist())
    plain = build_package("metadata", RUNTIME, "x86_64", tmp_path / "plain", cache)
    assert not plain.reused and plain.sha256 != changed.sha256  # the plug-in's zip is not this one's
    same = build_package("metadata", RUNTIME, "x86_64", tmp_path / "same", cache)
    assert same.reused and same.sha256 == plain.sha256 and same.zip_path.read_bytes() == plain.zip_path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["metadata.zip"]  # nothing staged is left
    (kept,) = [p.with_suffix(".zip") for p in (cache / "built").glob("metadata-*.json") if json.loads(p.read_text())["sha256"] == same.sha256]
    with kept.open("ab") as altered:
        altered.write(b"!")
    again = build_package("metadata", RUNTIME, "x86_64", tmp_path / "again", cache)
    assert not again.reused and again.sha256 == plain.sha256
    (cache / deps.name / "added_by_a_reinstall.py").write_text("x = 1\n")
    reinstalled = build_package("metadata", RUNTIME, "x86_64", tmp_path / "reinstalled", cache)
    assert not reinstalled.reused and "added_by_a_reinstall.py" in zipfile.ZipFile(reinstalled.zip_path).namelist()


def test_a_cache_that_cannot_keep_zips_does_not_stop_a_package(packages: dict[str, Package], tmp_path: Path) -> None:
    """Keeping and reusing zips is best effort: a cache whose zip folder cannot be made (here a
    file stands in its place; read-only or full alike) builds the package, as before there was
    one. Two deploys keeping the same zip at once each write their own file, then rename."""
    from publisher.deploy import built

    cache = tmp_path / "cache"
    deps = deps_folder("metadata", RUNTIME, "x86_64", (), default_cache())
    cache.mkdir()
    (cache / deps.name).symlink_to(deps)
    (cache / "built").write_text("not a folder")
    package = build_package("metadata", RUNTIME, "x86_64", tmp_path / "out", cache)
    assert not package.reused and package.sha256 == packages["metadata"].sha256
    zip_path = tmp_path / "some.zip"
    zip_path.write_bytes(b"z" * 2**20)
    record = {"sha256": hashlib.sha256(zip_path.read_bytes()).hexdigest(), "unzipped": 1, "files": 1}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: built.keep(tmp_path / "kept", "f", "k", zip_path, record), range(32)))
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["f-k.json", "f-k.zip"]
    assert built.reuse(tmp_path / "kept", "f", "k", tmp_path / "copy.zip") == record
    for damaged in ("[]", "null", '{"sha256": "x"}', "{"):
        (tmp_path / "kept" / "f-k.json").write_text(damaged)
        assert built.reuse(tmp_path / "kept", "f", "k", tmp_path / "copy.zip") is None


def test_each_package_answers_a_recorded_event_from_its_zip(answer: Callable[..., Any], tmp_path: Path) -> None:
    """Each handler, imported from its unpacked zip in ``python -I -S`` (no site packages), answers
    an API Gateway v2 event over a published store."""
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "img.npy", np.arange(64 * 64, dtype="uint16").reshape(64, 64))
    (data / "t.csv").write_text("a,b\n1,x\n2,y\n")
    site = run_build(tmp_path, {"sources": [{"path": "data", "into": ""}]}).store.url
    env = {"SKYSHELF_STORE": site}
    cases = {
        "metadata": ("/api/v1/search/", "", "application/json"),
        "arrays": ("/api/v1/array/full/img", "format=image/png&slice=0:32,0:32", "image/png"),
        "tables": ("/api/v1/table/full/t", "format=text/csv", "text/csv"),
    }
    for function, (path, query, media) in cases.items():
        event = event_for("GET", path, query, {"host": "example.org", "accept": media}, "127.0.0.1")
        got = answer(function, event, env)
        assert got is not None and got["statusCode"] == 200, (function, got)
        assert got["headers"]["Content-Type"].startswith(media), (function, got["headers"])
    for store, path in ((site, "/ui/app.js"), (str(tmp_path / "empty"), "/")):  # the browse page: the release's copy; the zip's
        (tmp_path / "empty").mkdir(exist_ok=True)
        got = answer("metadata", event_for("GET", path, "", {"host": "example.org"}, "127.0.0.1"), {"SKYSHELF_STORE": store})
        assert got is not None and got["statusCode"] == 200, (path, got)
        assert got["headers"]["Content-Type"].startswith("text/javascript" if path.endswith(".js") else "text/html"), got["headers"]
    bad = answer("metadata", event_for("GET", "/api/v1/search/", "filter[nope][condition][x]=1", {}, "127.0.0.1"), env)
    assert bad is not None and bad["statusCode"] == 400
    regex = "filter[regex][condition][key]=x&filter[regex][condition][pattern]="  # RE2 from the zip: runs, and refuses \\1
    for pattern, status in (("(.*.*.*)*Z", 200), ("(a)%5C1", 400)):
        got = answer("metadata", event_for("GET", "/api/v1/search/", regex + pattern, {}, "127.0.0.1"), env)
        assert got is not None and got["statusCode"] == status, got


def test_arm64_packages_hold_arm64_code(tmp_path: Path) -> None:
    """The default architecture: its wheels are aarch64 builds (their ELF headers say so); they
    cannot be imported on this x86_64 machine."""
    package = build_package("metadata", RUNTIME, "arm64", tmp_path)
    with zipfile.ZipFile(package.zip_path) as zf:
        libraries = [n for n in zf.namelist() if n.endswith(".so") and n.startswith("numpy/")]
        assert libraries
        machines = {int.from_bytes(zf.read(n)[18:20], "little") for n in libraries}
    assert machines == {183}  # EM_AARCH64
    assert package.unzipped_bytes <= BY_NAME["metadata"].target_bytes


# -- against moto's server ------------------------------------------------------------------
@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with moto_server(tmp_path_factory.mktemp("moto-deploy")) as server, environ({**server.env(), "AWS_REGION": "us-east-1"}):
        yield server.env()


def _pipeline(folder: Path, stack: str) -> Path:
    (folder / "data").mkdir(exist_ok=True)
    np.save(folder / "data" / "a.npy", np.arange(10))
    (folder / "data" / "b.csv").write_text("x,y\n1,2\n")
    config = {"sources": [{"path": "data", "into": ""}], "output": {"store": str(folder / "site")},
              "deploy": {"stack_name": stack, "prefix": "demo", "architecture": "x86_64"}}
    (folder / "pipeline.yml").write_text(json.dumps(config))
    return folder / "pipeline.yml"


def _deploy(pipeline: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["deploy", "-c", str(pipeline), "--json-report", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_deploy_redeploy_update_destroy_on_moto(aws: dict[str, str], tmp_path: Path) -> None:
    import boto3

    pipeline = _pipeline(tmp_path, "sky-e2e")
    assert CliRunner().invoke(main, ["build", "-c", str(pipeline)]).exit_code == 0

    plan = _deploy(pipeline, "--plan")  # nothing exists yet: everything would be made
    assert plan["planned"] and plan["packages_uploaded"] == 3 and {c["LogicalResourceId"] for c in plan["changes"]} >= {"MetadataFunction", "HandlerRole"}
    s3, lam, logs = (boto3.client(n) for n in ("s3", "lambda", "logs"))
    assert not lam.list_functions()["Functions"]  # the plan changed nothing

    first = _deploy(pipeline)
    bucket = first["bucket"]
    assert first["stack_status"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE") and first["packages_uploaded"] == 3
    local = sorted(p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("*") if p.is_file())
    remote = sorted(o["Key"].removeprefix("demo/") for o in s3.list_objects_v2(Bucket=bucket, Prefix="demo/")["Contents"])
    assert remote == local and first["uploaded"] == len(local)
    head = s3.head_object(Bucket=bucket, Key="demo/catalog.json")
    assert head["CacheControl"] == "no-cache" and head["ContentType"] == "application/json"
    functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    assert sorted(functions) == ["sky-e2e-arrays", "sky-e2e-metadata", "sky-e2e-tables"]
    meta = functions["sky-e2e-metadata"]
    assert meta["Handler"] == "handlers.metadata.lambda_handler" and meta["Runtime"] == "python3.13"
    assert meta["Environment"]["Variables"]["SKYSHELF_STORE"] == f"s3://{bucket}/demo"
    assert meta["Environment"]["Variables"]["SKYSHELF_S3_BACKEND"] == "boto3"
    tables = {f["Environment"]["Variables"]["SKYSHELF_KEYS_TABLE"] for f in functions.values()}  # API keys: the stack's table
    assert len(tables) == 1 and (table := tables.pop()) in boto3.client("dynamodb").list_tables()["TableNames"]
    made = CliRunner().invoke(main, ["keys", "create", "--tags", "A", "--deployed", "-c", str(pipeline)])
    assert made.exit_code == 0, made.output
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"id": {"S": made.stdout.split("_")[1]}})["Item"]
    assert item["tags"] == {"L": [{"S": "A"}]} and made.stdout.strip().split("_")[2] not in json.dumps(item)
    listed = CliRunner().invoke(main, ["keys", "list", "--deployed", "-c", str(pipeline)])
    assert listed.exit_code == 0 and made.stdout.split("_")[1] in listed.stdout
    groups = {g["logGroupName"]: g.get("retentionInDays") for g in logs.describe_log_groups()["logGroups"]}
    assert groups["/aws/lambda/sky-e2e-metadata"] == 14

    replan = CliRunner().invoke(main, ["deploy", "-c", str(pipeline), "--plan"])
    assert replan.exit_code == 0 and "packages: would upload 0" in replan.output and "no changes" in replan.output
    assert f"data: would upload 0 objects (0 B), {len(local)} unchanged" in replan.output
    again = _deploy(pipeline)  # nothing changed: nothing uploaded, no stack change
    assert again["uploaded_bytes"] == 0 and again["packages_uploaded"] == 0 and again["changes"] == []
    assert again["unchanged"] == len(local) and all(p["reused"] for p in again["packages"])  # no zip made again

    (tmp_path / "data" / "b.csv").write_text("x,y\n1,2\n3,4\n")  # a rebuild: a new release
    assert CliRunner().invoke(main, ["build", "-c", str(pipeline)]).exit_code == 0
    release = json.loads((tmp_path / "site" / "catalog.json").read_text())["release"]
    update = _deploy(pipeline)
    assert 0 < update["uploaded"] < len(local) + 10 and update["changes"] == []
    assert json.loads(s3.get_object(Bucket=bucket, Key="demo/catalog.json")["Body"].read())["release"] == release

    status = CliRunner().invoke(main, ["status", "-c", str(pipeline)])
    assert status.exit_code == 0 and "sky-e2e" in status.output and release in status.output

    gone = CliRunner().invoke(main, ["destroy", "-c", str(pipeline), "--yes"])
    assert gone.exit_code == 0 and "data kept" in gone.output
    assert not lam.list_functions()["Functions"]
    assert table not in boto3.client("dynamodb").list_tables()["TableNames"]  # its keys go with it
    assert s3.list_objects_v2(Bucket=bucket, Prefix="demo/")["KeyCount"] > 0  # the data stays
    cleared = CliRunner().invoke(main, ["destroy", "-c", str(pipeline), "--yes", "--delete-data"])
    assert cleared.exit_code == 0 and "was not deployed" in cleared.output
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]  # emptied, and the stack had made it


def test_deploy_errors_name_the_problem(aws: dict[str, str], tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, "sky-errors")
    unbuilt = CliRunner().invoke(main, ["deploy", "-c", str(pipeline)])
    assert unbuilt.exit_code != 0 and "run publish build first" in unbuilt.output
    bad = tmp_path / "bad.yml"
    bad.write_text(json.dumps({"sources": [{"path": "data"}], "deploy": {"stack_name": "1 bad name"}}))
    result = CliRunner().invoke(main, ["deploy", "-c", str(bad)])
    assert result.exit_code != 0 and "stack_name" in result.output
    shutil.rmtree(tmp_path / "data")


def test_deploy_waits_for_a_build_of_its_folder_before_the_upload(aws: dict[str, str], tmp_path: Path) -> None:
    """The upload lists the folder, then sends its entry points last: a build switching meanwhile
    made the bucket's catalog.json name a release none of whose objects were sent (and a gc could
    delete what was listed). The deploy holds the folder's gc and build locks while it uploads:
    busy, it fails naming the holder, before any AWS work."""
    import boto3

    from publisher.deploy import stack
    from publisher.store_lock import StoreBusy, exclusive
    from publisher.stores.local import LocalStore

    pipeline = _pipeline(tmp_path, "sky-busy")
    assert CliRunner().invoke(main, ["build", "-c", str(pipeline)]).exit_code == 0
    folder = LocalStore(str(tmp_path / "site"))
    with exclusive(folder, "publish build"):
        busy = CliRunner().invoke(main, ["deploy", "-c", str(pipeline)])  # (at once: before any AWS work)
    assert busy.exit_code != 0 and "busy" in busy.output and "publish build" in busy.output, busy.output
    assert "sky-busy-metadata" not in [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
    # and while it uploads: the locks held there, so a build that starts meanwhile waits or fails
    with stack._quiet(tmp_path / "site", 0.0), pytest.raises(StoreBusy, match="publish deploy"), exclusive(folder, "publish build"):
        pass


def test_the_upload_leaves_out_local_spills_keys_and_locks(tmp_path: Path) -> None:
    """What a local server and the build leave in the folder is not the release: spilled answers
    (anyone's under responses/, and a signed-in caller's own under private/responses/, which went
    up), the local API keys and the store's locks stay behind."""
    from publisher.deploy.upload import local_objects
    from publisher.store_lock import GC_LOCK_KEY, LOCK_KEY

    for key in ("catalog.json", "releases/r1/data/a.parquet", "private/releases/r1/catalog.json", "responses/ab12.csv",
                "private/responses/cd34.csv", "private/auth/keys.json", LOCK_KEY, GC_LOCK_KEY):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_text("x")
    assert sorted(local_objects(tmp_path)) == ["catalog.json", "private/releases/r1/catalog.json", "releases/r1/data/a.parquet"]
