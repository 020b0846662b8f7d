"""The example web app of the compose set-up: cookie sessions, a /whoami for upload-auth, and
a webhook receiver that shows each signed-in user their uploads.

The standard library and the official ImageKit SDK (``imagekitio[webhooks]``, installed by
example-app.Dockerfile). Not a pattern for real session handling (sessions and uploads live in
memory), but two contracts are exactly as a real app would keep them:

- upload-auth's forward auth: GET /whoami with the browser's cookies answers 200 and
  ``X-Caller-Id: <user>`` for a signed-in session, 401 otherwise;
- upload events: POST /webhooks/imagekit is verified with the SDK's own
  ``webhooks.unwrap`` (the webhook secret from WEBHOOK_SECRET_FILE), deduplicated by event id
  (delivery is at least once), and the upload is credited to the caller named in the event's
  ``receipt``, which upload-auth signed: never to whoever the browser says it is.
"""

import html
import http.cookies
import json
import os
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SESSIONS: dict[str, str] = {}
AUTH = os.environ.get("UPLOAD_AUTH_PUBLIC_URL", "http://localhost:8000")
PORT = int(os.environ.get("PORT", "8080"))
SECRET_FILE = os.environ.get("WEBHOOK_SECRET_FILE")
#: Each user's uploads, as the verified events named them; the event ids already seen.
UPLOADS: dict[str, list[dict[str, str]]] = {}
SEEN: set[str] = set()
LOCK = threading.Lock()


def verify(body: bytes, headers: dict[str, str]) -> dict[str, object] | None:
    """The event, if the official SDK verifies it (signature, and a timestamp within five
    minutes); None otherwise."""
    if SECRET_FILE is None:
        return None
    from imagekitio import ImageKit

    secret = Path(SECRET_FILE).read_text().strip()
    client = ImageKit(private_key="not-needed-to-verify", webhook_secret=secret)
    try:
        event = client.webhooks.unwrap(body.decode(), headers=headers)
    except Exception:
        return None
    return event.to_dict()


PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Example app</title>
<style>body {{ font: 15px system-ui, sans-serif; max-width: 640px; margin: 40px auto; }}</style>
<h1>Example app</h1>
{body}
</html>"""

SIGN_IN = """<form action="/login"><label>Your name <input name="user" required
pattern="[A-Za-z0-9_\\-]{1,32}"></label> <button>Sign in</button></form>"""

UPLOAD = """<p>Signed in as <b>{user}</b>. <a href="/logout">Sign out</a></p>
<input type="file" id="file" disabled> <progress id="bar" max="1" value="0"></progress>
<p id="out"></p>
<h2>Your uploads</h2>
<ul id="uploads"></ul>
<script type="module">
  import {{ upload }} from "{auth}/upload-auth.js";
  document.getElementById("file").addEventListener("change", async (event) => {{
    const out = document.getElementById("out");
    try {{
      const result = await upload(event.target.files[0], {{
        authUrl: "{auth}", withCredentials: true,
        onProgress: ({{ fraction }}) => document.getElementById("bar").value = fraction,
      }});
      out.innerHTML = `Uploaded: <a href="${{result.url}}">${{result.name}}</a>`;
    }} catch (error) {{
      out.textContent = error.message;
    }}
  }});
  document.getElementById("file").disabled = false;  // ready: the helper has loaded
  // The list comes from upload events the app verified, not from this page.
  async function refresh() {{
    const mine = await (await fetch("/my-uploads")).json();
    document.getElementById("uploads").replaceChildren(...mine.map((file) => {{
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = file.url;
      link.textContent = file.name;
      item.append(link);
      return item;
    }}));
  }}
  refresh();
  setInterval(refresh, 1000);
</script>"""


class App(BaseHTTPRequestHandler):
    def session_user(self) -> str | None:
        cookie = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        morsel = cookie.get("session")
        return SESSIONS.get(morsel.value) if morsel else None

    def reply(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        user = self.session_user()
        if url.path == "/healthz":
            self.reply(200, "ok")
        elif url.path == "/whoami":  # upload-auth's forward auth
            if user:
                self.reply(200, "", {"X-Caller-Id": user})
            else:
                self.reply(401)
        elif url.path == "/login":
            name = parse_qs(url.query).get("user", [""])[0]
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", name):
                self.reply(400, "bad name")
                return
            session = secrets.token_urlsafe(24)
            SESSIONS[session] = name
            self.reply(
                303,
                "",
                {
                    "Location": "/",
                    "Set-Cookie": f"session={session}; HttpOnly; SameSite=Lax; Path=/",
                },
            )
        elif url.path == "/my-uploads":
            with LOCK:
                # upload-auth knows this app's users by their session identity
                mine = list(UPLOADS.get(f"session:{user}", [])) if user else []
            data = json.dumps(mine).encode()
            self.send_response(200 if user else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif url.path == "/logout":
            self.reply(303, "", {"Location": "/", "Set-Cookie": "session=; Max-Age=0; Path=/"})
        elif url.path == "/":
            body = UPLOAD.format(user=html.escape(user), auth=AUTH) if user else SIGN_IN
            self.reply(200, PAGE.format(body=body))
        else:
            self.reply(404, "not found")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/webhooks/imagekit":
            self.reply(404, "not found")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        event = verify(body, {k.lower(): v for k, v in self.headers.items()})
        if event is None:
            self.reply(401, "unverified")
            return
        receipt = event.get("receipt")
        data = event.get("data")
        caller = receipt.get("caller") if isinstance(receipt, dict) else None
        with LOCK:
            if event["id"] not in SEEN and isinstance(data, dict) and caller:
                SEEN.add(str(event["id"]))
                upload = {"name": str(data.get("name")), "url": str(data.get("url"))}
                UPLOADS.setdefault(str(caller), []).append(upload)
        self.reply(200, "ok")

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", PORT), App).serve_forever()  # noqa: S104 - in a container
