"""A login endpoint that reads the user name the lenient ways Flask apps
do: request.values (the query string, then the form) and, for anything
else, get_json(force=True). It reports the name it read.
"""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/login", methods=["POST"])
def login():
    name = request.values.get("username")
    if name is None:
        data = request.get_json(force=True, silent=True) or {}
        name = data.get("username")
    return jsonify(user=name)
