from kicau.serve import run
from services.graph.settings import GraphSettings

if __name__ == "__main__":
    settings = GraphSettings()
    run("services.graph.app:app", host=settings.host, port=settings.port, unix_socket=settings.socket,
        call_socket=settings.call_socket)
