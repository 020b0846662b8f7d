"""Browser tests' shared parts: Chromium's flags, the official SDK's bundle, the three origins."""

from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import Server
from tests.support.uploads import leftovers

HERE = Path(__file__).parents[1] / "browser"


ARTIFACTS = HERE.parents[1] / "test-artifacts"


SDK = HERE / "node_modules" / "@imagekit" / "javascript" / "dist" / "imagekit.min.js"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


MAX_SIZE = 200 * 1024


@dataclass
class Origins:
    demo: Server
    service: Server
    upload_api: Server
    storage: Path
    private_key: str

    def demo_url(self) -> str:
        return f"{self.demo.url}/demo/?auth={self.service.url}&upload={self.upload_api.url}"

    def stored(self) -> list[Path]:
        return [p for p in (self.storage / "files").rglob("*") if p.is_file()]

    def in_flight(self) -> list[Path]:
        return leftovers(self.storage)
