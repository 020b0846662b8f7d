"""The example web app of the compose set-up: cookie sessions, and a /whoami for upload-auth.

Standard library only, so it runs in a bare python image. Not a pattern for real session
handling (sessions live in memory), but the contract upload-auth's forward auth expects is
exactly this: GET /whoami with the browser's cookies answers 200 and ``X-Caller-Id: <user>``
for a signed-in session, 401 otherwise.
"""

import html
import http.cookies
import os
import re
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SESSIONS: dict[str, str] = {}
AUTH = os.environ.get("UPLOAD_AUTH_PUBLIC_URL", "http://localhost:8000")
PORT = int(os.environ.get("PORT", "8080"))

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
        elif url.path == "/logout":
            self.reply(303, "", {"Location": "/", "Set-Cookie": "session=; Max-Age=0; Path=/"})
        elif url.path == "/":
            body = UPLOAD.format(user=html.escape(user), auth=AUTH) if user else SIGN_IN
            self.reply(200, PAGE.format(body=body))
        else:
            self.reply(404, "not found")

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", PORT), App).serve_forever()  # noqa: S104 - in a container
