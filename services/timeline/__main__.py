from kicau.serve import run
from services.timeline.settings import TimelineSettings

if __name__ == "__main__":
    settings = TimelineSettings()
    run("services.timeline.app:app", host=settings.host, port=settings.port, unix_socket=settings.socket,
        call_socket=settings.call_socket)
