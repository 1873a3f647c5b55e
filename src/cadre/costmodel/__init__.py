"""cadre.costmodel"""
