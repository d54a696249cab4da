from kicau.serve import run
from services.push.settings import PushSettings

if __name__ == "__main__":
    settings = PushSettings()
    run("services.push.app:app", host=settings.host, port=settings.port)
