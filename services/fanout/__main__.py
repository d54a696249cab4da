from kicau.serve import run
from services.fanout.settings import FanoutSettings

if __name__ == "__main__":
    settings = FanoutSettings()
    run("services.fanout.app:app", host=settings.host, port=settings.port)
