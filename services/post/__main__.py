from kicau.serve import run
from services.post.settings import PostSettings

if __name__ == "__main__":
    settings = PostSettings()
    run("services.post.app:app", host=settings.host, port=settings.port, unix_socket=settings.socket,
        call_socket=settings.call_socket)
