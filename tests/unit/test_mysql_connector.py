"""The connection's default trust: the Amazon RDS CA bundle the layer ships."""

from wandb_ops.access.mysql.connector import DEFAULT_CA_BUNDLE, Connector


def test_the_default_ca_bundle_is_the_one_shipped_in_the_layer() -> None:
    assert Connector().ca_bundle == DEFAULT_CA_BUNDLE
    assert DEFAULT_CA_BUNDLE.is_file(), DEFAULT_CA_BUNDLE
    assert "-----BEGIN CERTIFICATE-----" in DEFAULT_CA_BUNDLE.read_text()
