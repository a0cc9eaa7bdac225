"""A real Flask app for Rampart's integration tests, run under gunicorn.

It reports what it received, so the tests can check what reached the app.
ProxyFix trusts exactly one proxy: Rampart.
"""
import hashlib
import time

from flask import Flask, Response, jsonify, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

seen = []  # (method, path) of every request this worker handled


@app.route("/", methods=["GET", "POST", "PUT", "DELETE"])
def index():
    seen.append((request.method, request.path))
    return jsonify(
        remote_addr=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        url=request.url,
        headers={k: v for k, v in request.headers.items()},
    )


@app.route("/echo", methods=["POST"])
def echo():
    seen.append((request.method, request.path))
    body = request.get_data()
    return jsonify(
        length=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        content_length=request.headers.get("Content-Length"),
        transfer_encoding=request.headers.get("Transfer-Encoding"),
    )


@app.route("/seen")
def seen_list():
    return jsonify(seen=seen)


@app.route("/go-home")
def go_home():
    return redirect(url_for("index", _external=True))


@app.route("/crash")
def crash():
    raise RuntimeError("secret internal detail: DATABASE_PASSWORD=hunter2")


@app.route("/slow")
def slow():
    time.sleep(float(request.args.get("s", "1")))
    return "done"


@app.route("/drip")
def drip():
    """n parts, s seconds apart: a long poll's or a slow report's pauses."""
    n, pause = int(request.args.get("n", "3")), float(request.args.get("s", "1"))

    def parts():
        for i in range(n):
            if i:
                time.sleep(pause)
            yield "part %d\n" % i

    return Response(parts(), mimetype="text/plain")


@app.route("/big")
def big():
    """mb MiB of 'b', streamed with a Content-Length, as send_file does."""
    size = int(request.args.get("mb", "1")) << 20
    block = b"b" * 65536

    def blocks():
        for _ in range(size // len(block)):
            yield block

    return Response(blocks(), headers={"Content-Length": str(size)}, mimetype="application/octet-stream")
