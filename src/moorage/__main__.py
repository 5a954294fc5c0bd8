from moorage.cli.main import run

run()
