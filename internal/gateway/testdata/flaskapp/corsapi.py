"""A JSON API that another origin's page calls, with flask-cors: the
origin in SPA_ORIGIN may POST JSON with credentials to /api/."""
import os

from flask import Flask, jsonify, request
from flask_cors import CORS

app = Flask(__name__)
CORS(app, resources={r"/api/*": {"origins": os.environ["SPA_ORIGIN"]}}, supports_credentials=True, max_age=600)
received = []


@app.post("/api/items")
def create_item():
    received.append(request.get_json(silent=True))
    return jsonify(ok=True, n=len(received))


@app.post("/api/form")
def form_post():
    received.append(dict(request.form))
    return jsonify(ok=True)


@app.get("/api/received")
def count():
    return jsonify(n=len(received))
