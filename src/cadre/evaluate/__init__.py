"""cadre.evaluate"""
