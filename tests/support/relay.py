"""The API-key set-up's browser side, as docs/clients.md writes it: its relays (Python and
Node) run as written, and a page around a snippet that uploads through ``credentialUrl``."""

import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.servers import Server, free_port, require_program, running_argv

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).parents[2]
CLIENTS_DOC = ROOT / "docs" / "clients.md"
HELPER = ROOT / "app" / "credential_service" / "web" / "upload-auth.js"


def doc_block(name: str) -> str:
    """The code block docs/clients.md marks ``<!-- relay: NAME -->``, as written."""
    found = re.search(rf"<!-- relay: {name} -->\n```\w+\n(.*?)```", CLIENTS_DOC.read_text(), re.S)
    assert found is not None, f"docs/clients.md lost its {name} relay"
    return found[1]


def write_page(site: Path, snippet: str | None = None) -> None:
    """A page snippet (the docs', unless given) in a page: its imports at the top of a module,
    the rest run for a chosen file (``v1``: the same with version and upload API given)."""
    block = (snippet or doc_block("page")).strip().splitlines()
    imports = "\n".join(line for line in block if line.startswith("import "))
    body = "\n".join(line for line in block if not line.startswith("import "))
    (site / "index.html").write_text(f"""<!doctype html>
<meta charset="utf-8">
<input type="file" id="file"><pre id="out">ready</pre>
<script type="module">
{imports}
window.asWritten = async (file) => {{
{body}
  return stored;
}};
window.asV1 = (file, uploadUrl) =>
  upload(file, {{ credentialUrl: "/upload-credential", version: "v1", uploadUrl }});
window.viaFunction = (file) => upload(file, {{
  getCredential: async (request) => (await fetch("/upload-credential", {{
    method: "POST", headers: {{ "Content-Type": "application/json" }},
    body: JSON.stringify(request),
  }})).json(),
}});
document.getElementById("out").dataset.ready = "yes";
</script>
""")
    shutil.copy(HELPER, site / "upload-auth.js")


@contextmanager
def relay(kind: str, root: Path, env: dict[str, str]) -> Iterator[Server]:
    port = free_port()
    if kind == "python":
        (root / "relay.py").write_text(doc_block("python"))
        argv = [sys.executable, "-m", "uvicorn", "relay:app", "--port", str(port)]
    else:
        (root / "relay.mjs").write_text(doc_block("node"))
        argv = [require_program("node"), "relay.mjs"]
    with running_argv(
        argv,
        port=port,
        env={**env, "PORT": str(port)},
        log=root / f"relay-{kind}.log",
        ready="/",
        cwd=root,
        ready_status=404,  # the relay answers only its one POST
    ) as server:
        yield server


@contextmanager
def app_origin(root: Path, port: int, site: Path, relay_url: str) -> Iterator[str]:
    """The app's one origin, on 127.0.0.1:``port``: nginx serving ``site`` and passing
    ``/upload-credential`` to the relay."""
    from tests.support.servers import nginx, upstream

    server = (
        f"  server {{ listen 127.0.0.1:{port}; root {site};\n"
        "    types { text/html html; text/javascript js; }\n"
        "    location /upload-credential { proxy_pass http://relay; } }"
    )
    with nginx(root, [upstream("relay", [relay_url.removeprefix("http://")])], [server]):
        yield f"http://127.0.0.1:{port}"


#: The file the page chose, for ``page.evaluate``.
CHOSEN = "document.getElementById('file').files[0]"


def choose(page: "Page", origin: str, picture: Path) -> None:
    """Open the app's page (``write_page``) once its module has loaded, and choose
    ``picture`` in its file input (then ``window.asWritten(CHOSEN)`` uploads it)."""
    from playwright.sync_api import expect

    page.goto(origin + "/index.html")
    expect(page.locator("#out")).to_have_attribute("data-ready", "yes")
    page.set_input_files("#file", str(picture))
