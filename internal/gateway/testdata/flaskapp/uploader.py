"""Two upload views. /upload (and /other) save under the name the client
gave, without secure_filename: the careless pattern the tests attack.
/careful saves under secure_filename's name and reports the name as sent
that Rampart's sanitise passes in X-Original-Filename. Each reports where
its files went.
"""
import os

from flask import Flask, jsonify, request
from werkzeug.utils import secure_filename

app = Flask(__name__)
UPLOADS = os.environ["UPLOAD_DIR"]


@app.route("/upload", methods=["POST"])
@app.route("/other", methods=["POST"])
def upload():
    saved = []
    for f in request.files.getlist("file"):
        path = os.path.join(UPLOADS, f.filename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        f.save(path)
        saved.append(os.path.abspath(path))
    return jsonify(saved=saved)


@app.route("/careful", methods=["POST"])
def careful():
    saved = []
    for f in request.files.getlist("file"):
        name = secure_filename(f.filename) or "unnamed"
        f.save(os.path.join(UPLOADS, name))
        saved.append({"name": name, "sent": f.filename, "original": f.headers.get("X-Original-Filename", "")})
    return jsonify(saved=saved)
