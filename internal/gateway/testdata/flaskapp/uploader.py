"""An app that saves uploads under the name the client gave, without
secure_filename: the careless pattern the tests attack. It reports where
each file went.
"""
import os

from flask import Flask, jsonify, request

app = Flask(__name__)
UPLOADS = os.environ["UPLOAD_DIR"]


@app.route("/upload", methods=["POST"])
def upload():
    saved = []
    for f in request.files.getlist("file"):
        path = os.path.join(UPLOADS, f.filename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        f.save(path)
        saved.append(os.path.abspath(path))
    return jsonify(saved=saved)
