"""The Huey instance: a SQLite queue in the data directory, or Redis when TUNEDECK_QUEUE_URL says so."""

from huey import Huey, RedisHuey, SqliteHuey

from core.settings import Settings, get_settings


def make_huey(settings: Settings) -> Huey:
    if settings.queue_url:
        return RedisHuey("tunedeck", url=settings.queue_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("tunedeck", filename=str(settings.queue_path))


huey = make_huey(get_settings())
