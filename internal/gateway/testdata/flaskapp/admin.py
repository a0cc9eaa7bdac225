"""An app with an admin area behind Rampart's login portal. It reads the
user from Remote-User, as the README tells Flask apps to, and reports
what it was told, so tests can check what reached it.
"""
from flask import Flask, jsonify, request

app = Flask(__name__)


def seen():
    return jsonify(
        path=request.path,
        user=request.headers.get("Remote-User"),
        groups=request.headers.get("Remote-Groups"),
        name=request.headers.get("Remote-Name"),
        cookies=sorted(request.cookies),
        environ_user=request.environ.get("REMOTE_USER"),
    )


@app.route("/")
def index():
    return seen()


@app.route("/admin/", methods=["GET", "POST"])
@app.route("/admin/<path:rest>", methods=["GET", "POST"])
def admin(rest=""):
    return seen()


@app.route("/internal/<path:rest>")
def internal(rest=""):
    return seen()
