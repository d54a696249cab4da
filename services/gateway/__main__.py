from kicau.serve import run
from services.gateway.settings import GatewaySettings

if __name__ == "__main__":
    settings = GatewaySettings()
    run("services.gateway.app:app", host=settings.host, port=settings.port)
