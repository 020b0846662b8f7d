"""ImageKit's documented Python pattern: Flask + imagekitio's get_authentication_parameters()."""

import os

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from imagekitio import ImageKit

imagekit = ImageKit(private_key=os.environ["IMAGEKIT_PRIVATE_KEY"])
app = Flask(__name__)


@app.get("/v1/auth")
def auth() -> ResponseReturnValue:
    return jsonify(imagekit.helper.get_authentication_parameters())


@app.get("/healthz")
def healthz() -> ResponseReturnValue:
    return "ok"
