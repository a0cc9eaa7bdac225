from flask import Flask

app = Flask(__name__)
app.config["SECRET_KEY"] = "planted-in-the-audit-fixture"
